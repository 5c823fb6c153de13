"""The deadline wheel: earliest real deadline first, whatever bucket or stale entry holds it."""

from __future__ import annotations

from sessionwarden.enforcer.engine.deadlines import Deadlines
from sessionwarden.enforcer.engine.sessions import Ended, Key, Session


def _session(sid: str, login: float, idle: float, absolute: float = 10_000.0) -> Session:
    key = ("acme", sid)
    return Session(key, "u", "customer", "low", login, login, login, idle, absolute, (), ())


def _index(*sessions: Session) -> tuple[Deadlines, dict[Key, Session | Ended]]:
    index = Deadlines()
    live: dict[Key, Session | Ended] = {}
    for sess in sessions:
        live[sess.key] = sess
        index.arm(sess.deadline()[0], sess.key)
    return index, live


def _drain(index: Deadlines, live: dict[Key, Session | Ended], until: float) -> list[str]:
    fired = []
    while (sess := index.pop_due(until, live)) is not None:
        fired.append(sess.session_id)
        live[sess.key] = Ended(sess.key, "u", "idle_timeout", sess.deadline()[0], 0.0)
    return fired


def test_sessions_come_due_earliest_first_with_ties_by_key() -> None:
    """Within one bucket and across buckets, the order is (deadline, key)."""
    index, live = _index(
        _session("c", 0.0, 10.7), _session("b", 0.0, 10.2), _session("a", 0.0, 10.2)
    )
    index.arm(3.5, ("acme", "z"))  # a key with no session: dropped when it comes up
    assert None is index.due_by(10.1, live)
    assert 10.2 == index.due_by(10.5, live)
    assert ["a", "b"] == _drain(index, live, 10.5)
    assert ["c"] == _drain(index, live, 11.0)
    assert [] == _drain(index, live, 1e9)


def test_activity_moves_a_deadline_into_a_later_bucket() -> None:
    """A stale entry is re-armed at the real deadline, and fires there, not before."""
    moved, other = _session("moved", 0.0, 10.0), _session("other", 0.0, 15.0)
    index, live = _index(moved, other)
    moved.last_activity = 8.0  # real deadline 18
    assert None is index.due_by(12.0, live)
    assert 15.0 == index.due_by(20.0, live)
    assert ["other", "moved"] == _drain(index, live, 20.0)


def test_a_stale_entry_still_due_gives_way_to_an_earlier_real_deadline() -> None:
    """The top entry's session moved later but is still due: an earlier one fires first."""
    first, second = _session("first", 0.0, 10.0), _session("second", 0.0, 10.5)
    index, live = _index(first, second)
    first.last_activity = 0.8  # real deadline 10.8, still in the opened bucket
    assert 10.5 == index.due_by(11.0, live)
    assert ["second", "first"] == _drain(index, live, 11.0)


def test_a_shorter_deadline_armed_after_opening_fires_in_order() -> None:
    """An entry armed into a bucket already opened goes straight to the exact heap."""
    late = _session("late", 0.0, 30.0)
    index, live = _index(late)
    assert None is index.due_by(20.0, live)  # opens the buckets up to 20
    early = _session("early", 0.0, 12.0)
    live[early.key] = early
    index.arm(12.0, early.key)
    late.idle_timeout = 11.0  # shortened (a high-risk action): a new entry
    index.arm(late.deadline()[0], late.key)
    assert ["late", "early"] == _drain(index, live, 20.0)
    assert [] == _drain(index, live, 40.0)
