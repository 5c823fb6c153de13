"""The Keycloak actuator's batch over fakes and a fake clock: a batch is committed only once
every session in it is answered for good, Keycloak down means asked again with backoff, and
the outcome lines never carry a raw session id."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.idp.actuator import KeycloakActuator
from sessionwarden.idp.keycloak import Answer
from sessionwarden.idp.retry import Verdict
from tests.unit import test_caep_transmitter
from tests.unit.sdk.fakes import T0, FakeMessage, revalidation, revocation, wire


def msg(value: bytes | None, offset: int, partition: int = 0) -> FakeMessage:
    return FakeMessage(value, partition, offset)


class FakeConsumer(test_caep_transmitter.FakeConsumer):
    """The transmitter tests' consumer, committing the offsets it is given."""

    def __init__(self, msgs: list[FakeMessage]) -> None:
        super().__init__([])
        self.msgs = msgs
        self.offsets: list[list[tuple[int, int]]] = []

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:  # type: ignore[override]
        batch, self.msgs = self.msgs[:num_messages], self.msgs[num_messages:]
        return batch

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:  # type: ignore[override]
        self.offsets.append(sorted((tp.partition, tp.offset) for tp in offsets))


class FakeKeycloak:
    """Answers from a script per session (the last answer repeats)."""

    def __init__(self, script: dict[str, list[int | None]]) -> None:
        self.script = script
        self.calls: list[tuple[str, str, float]] = []
        self.clock: FakeClock | None = None

    def check(self, realm: str) -> str | None:
        return None

    def end_session(self, realm: str, session_id: str) -> Answer:
        assert self.clock is not None
        self.calls.append((realm, session_id, self.clock.now))
        answers = self.script.get(session_id, [204])
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        verdict = {204: Verdict.ENDED, 404: Verdict.ALREADY_ENDED, 400: Verdict.REJECTED}
        return Answer(verdict.get(status, Verdict.AGAIN), status, "" if status else "no answer")  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(round(seconds, 6))
        self.now += seconds
        return False


def actuator(
    msgs: list[FakeMessage], script: dict[str, list[int | None]], **values: Any
) -> tuple[KeycloakActuator, FakeConsumer, FakeKeycloak, FakeClock]:
    settings = Settings(
        keycloak_realms="acme, globex",
        keycloak_retry_base_s=1.0,
        keycloak_retry_max_s=4.0,
        metrics_enabled=False,
        **values,
    )
    consumer, keycloak, clock = FakeConsumer(msgs), FakeKeycloak(script), FakeClock()
    keycloak.clock = clock
    act = KeycloakActuator(
        settings, keycloak, consumer_factory=lambda _: consumer, clock=clock, rand=lambda: 1.0
    )
    act.wait = clock.wait
    act._consumer = act._open()
    return act, consumer, keycloak, clock


def test_a_batch_is_committed_once_keycloak_ended_its_sessions() -> None:
    """Every revocation of a listed realm is one DELETE; then the batch's offsets commit."""
    msgs = [msg(wire(revocation("s1")), 7), msg(wire(revocation("s2", tenant="globex")), 3, 1)]
    act, consumer, keycloak, _ = actuator(msgs, {"s2": [404]})
    assert 2 == act.step()
    assert [("acme", "s1"), ("globex", "s2")] == sorted((r, s) for r, s, _ in keycloak.calls)
    assert [[(0, 8), (1, 4)]] == consumer.offsets
    assert (1, 1, 0) == (act.stats["ended"], act.stats["already_ended"], act.stats["retries"])


def test_keycloak_down_is_asked_again_with_backoff_and_nothing_is_committed_before() -> None:
    """No answer three times: waits of 1, 2, 4 s (doubling to the ceiling), then it ends."""
    act, consumer, keycloak, clock = actuator(
        [msg(wire(revocation("s1")), 0)], {"s1": [None, 503, None, 204]}
    )
    act.step()
    assert [1000.0, 1001.0, 1003.0, 1007.0] == [t for _, _, t in keycloak.calls]
    assert [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0] == clock.waits  # a second at a time: health
    assert ([[(0, 1)]], 3, 1) == (consumer.offsets, act.stats["retries"], act.stats["ended"])


def test_a_stop_while_keycloak_is_down_commits_nothing() -> None:
    """The restart reads the batch again and asks again: a revocation is never lost."""
    act, consumer, keycloak, clock = actuator([msg(wire(revocation("s1")), 0)], {"s1": [None]})

    def wait_then_stop(seconds: float) -> bool:
        clock.wait(seconds)
        if len(keycloak.calls) == 3:
            act.stop()
        return True

    act.wait = wait_then_stop
    assert 0 == act.step()
    assert ([], 3, 0) == (consumer.offsets, len(keycloak.calls), act.stats["ended"])


def test_other_tenants_revalidations_and_garbage_are_skipped_but_committed() -> None:
    """Only revocations of the listed realms reach Keycloak; the rest moves the offsets on."""
    msgs = [
        msg(wire(revocation("s1", tenant="initech")), 0),
        msg(wire(revalidation("s2")), 1),
        msg(b"{not json", 2),
        msg(wire(revocation("s3")), 3),
    ]
    act, consumer, keycloak, _ = actuator(msgs, {})
    act.step()
    assert [("acme", "s3")] == [(r, s) for r, s, _ in keycloak.calls]
    assert [[(0, 4)]] == consumer.offsets
    assert (2, 1, 4) == (act.stats["skipped"], act.stats["undecodable"], act.stats["records"])


def test_a_session_revoked_twice_in_a_batch_is_asked_once() -> None:
    """Idempotent within a batch; across batches Keycloak's 404 makes it so."""
    msgs = [msg(wire(revocation("s1")), 0), msg(wire(revocation("s1", reason="logout")), 1)]
    act, _, keycloak, _ = actuator(msgs, {})
    assert 1 == act.step()
    assert 1 == len(keycloak.calls)


def test_a_rejected_request_is_audited_and_does_not_hold_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 400 cannot succeed by asking again: an error line, a counter, and the batch commits."""
    act, consumer, _, _ = actuator([msg(wire(revocation("s1")), 0)], {"s1": [400]})
    with caplog.at_level(logging.INFO, logger="sessionwarden.idp.actuator"):
        act.step()
    assert (1, [[(0, 1)]]) == (act.stats["rejected"], consumer.offsets)
    assert ["ERROR"] == [r.levelname for r in caplog.records]


def test_the_outcome_line_names_the_session_by_its_hash_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The audit line of an ended session: outcome, realm, hashed session, delay; no raw id."""
    raw = "raw-session-id-0123456789"
    act, _, _, _ = actuator([msg(wire(revocation(raw, user_id="u1")), 0)], {})
    act.wall = lambda: T0 + 1.5
    with caplog.at_level(logging.INFO, logger="sessionwarden.idp.actuator"):
        act.step()
    (line,) = [r for r in caplog.records if r.getMessage() == "Keycloak session ended"]
    fields = line.__dict__
    assert ("ended", "acme", act.hash(raw), 1, 1.5) == (
        fields["outcome"],
        fields["realm"],
        fields["session"],
        fields["attempts"],
        fields["after_effective_s"],
    )
    assert all(raw not in repr(v) for v in fields.values())


def test_an_ended_session_is_asked_about_once_more_and_a_kept_one_is_ended_again() -> None:
    """A refresh racing the end can keep a Keycloak session alive: a second of the fake clock
    later each ended session is asked once more; 204 again counts as restored, 404 confirms."""
    msgs = [msg(wire(revocation("kept")), 0), msg(wire(revocation("gone")), 1)]
    act, consumer, keycloak, clock = actuator(msgs, {"kept": [204, 204], "gone": [204, 404]})
    act.step()
    act.step()  # nothing new, nothing due yet
    assert 2 == len(keycloak.calls)
    clock.now += 1.0
    act.step()
    assert ["gone", "gone", "kept", "kept"] == sorted(s for _, s, _ in keycloak.calls)
    assert (1, 2) == (act.stats["restored"], act.stats["ended"])
    clock.now += 5.0
    act.step()
    assert 4 == len(keycloak.calls)  # once only
    assert [[(0, 2)]] == consumer.offsets
