"""The actuator's retry policy, on plain numbers: what is asked again, when, and what is final."""

from __future__ import annotations

import pytest

from sessionwarden.idp.retry import Backoff, Pending, Verdict, classify


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (204, Verdict.ENDED),
        (200, Verdict.ENDED),
        (404, Verdict.ALREADY_ENDED),
        (401, Verdict.REAUTH),
        (403, Verdict.AGAIN),
        (429, Verdict.AGAIN),
        (500, Verdict.AGAIN),
        (503, Verdict.AGAIN),
        (None, Verdict.AGAIN),
        (400, Verdict.REJECTED),
        (405, Verdict.REJECTED),
    ],
)
def test_each_answer_has_one_verdict(status: int | None, verdict: Verdict) -> None:
    """Only a session Keycloak ended or does not hold is done; a down Keycloak is asked again."""
    assert verdict == classify(status)


def test_final_verdicts_are_the_answers_for_good() -> None:
    """A final verdict settles the request; the others keep it pending."""
    assert {Verdict.ENDED, Verdict.ALREADY_ENDED, Verdict.REJECTED} == {
        v for v in Verdict if v.final
    }


def test_backoff_doubles_up_to_its_ceiling_with_equal_jitter() -> None:
    """The n-th failure waits half to all of base * 2**(n-1), never more than max."""
    backoff = Backoff(0.2, 5.0)
    assert [0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5] == [
        round(backoff.delay(n, 0.0), 6) for n in range(1, 8)
    ]
    assert [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0] == [
        round(backoff.delay(n, 1.0), 6) for n in range(1, 8)
    ]
    assert 5.0 == backoff.delay(10_000, 1.0)
    assert 0.0 == backoff.delay(0, 0.5)


def test_backoff_refuses_a_ceiling_below_its_start() -> None:
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_pending_asks_again_only_after_the_backoff() -> None:
    """A failed request is due again at now + delay, and not before; settle drops it."""
    pending: Pending[str] = Pending(Backoff(1.0, 8.0), rand=lambda: 1.0)
    pending.add(["a", "b"], now=100.0)
    assert ["a", "b"] == pending.due(100.0)
    assert 101.0 == pending.failed("a", now=100.0)
    assert 0 == pending.settle("b")
    assert [] == pending.due(100.9)
    assert ["a"] == pending.due(101.0)
    assert 103.0 == pending.failed("a", now=101.0)
    assert 103.0 == pending.next_at()
    assert 2 == pending.settle("a")
    assert (0, None) == (len(pending), pending.next_at())


def test_pending_keeps_one_request_per_key() -> None:
    """The same session twice in a batch is asked once."""
    pending: Pending[str] = Pending(Backoff(1.0, 8.0), rand=lambda: 0.0)
    pending.add(["a", "a"], now=0.0)
    pending.failed("a", now=0.0)
    pending.add(["a"], now=0.0)
    assert (1, 1) == (len(pending), pending.failures("a"))
