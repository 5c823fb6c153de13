"""What ``PartitionEnforcer.apply`` says became of each event: the shell dead-letters and the
metrics count from it, so it must name every case the core tells apart."""

from __future__ import annotations

from sessionwarden.contracts.inputs import AuthEvent
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.outcome import APPLIED, DUPLICATE, LATE, REFUSED, Outcome
from tests.unit.enforcer.factories import T0, activity, login, logout, policy, role_change


def _apply_all(*events: tuple[AuthEvent, float]) -> list[Outcome]:
    core = PartitionEnforcer(policy(), 0)
    core.state.begin()
    return [core.apply(event, T0 + read_at, T0 + read_at) for event, read_at in events]


def test_each_event_says_whether_it_was_applied_duplicate_late_or_refused() -> None:
    """The metrics' outcome label comes from here: a wrong kind is a wrong dashboard."""
    first = login(0, "s1")
    outcomes = _apply_all(
        (first, 0),
        (first, 1),  # the same event again
        (login(2, "s1"), 2),  # a replayed login of a live session, new event id
        (activity(3), 3),
        (logout(5), 5),
        (activity(4), 6),  # made before the logout, read after it
        (activity(7), 7),  # made after the logout: an ended session used
        (activity(8, "s1", user="u2"), 8),  # another user's session
        (role_change(9, granted=("editor",)), 9),
    )
    expected = [APPLIED, DUPLICATE, DUPLICATE, APPLIED, APPLIED, LATE, REFUSED, REFUSED, APPLIED]
    assert [o.kind for o in expected] == [o.kind for o in outcomes]
    assert all(o.reason is None and o.detail is None for o in outcomes)


def test_an_event_from_the_future_is_dead_lettered_with_its_reason() -> None:
    """The shell writes the dead letter from the outcome alone: reason and detail."""
    (outcome,) = _apply_all((activity(100), 0))
    assert ("dead_lettered", "future_timestamp") == (outcome.kind, outcome.reason)
    assert outcome.detail is not None and "100.0s ahead" in outcome.detail


def test_a_logout_before_its_login_is_applied_and_the_login_after_it_refused() -> None:
    outcomes = _apply_all((logout(5, "s9"), 5), (login(0, "s9"), 6))
    assert ["applied", "refused"] == [o.kind for o in outcomes]
