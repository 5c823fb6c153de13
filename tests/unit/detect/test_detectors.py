"""The pure detectors with plain numbers: window edges, escalation rules, live sessions."""

from __future__ import annotations

from sessionwarden.detect.detectors import (
    ConcurrentSessions,
    Escalation,
    Expiry,
    Grant,
    Operation,
    PrivilegeLadder,
    RepeatedExpirations,
    Trigger,
    ended_session_used,
)
from tests.unit.detect.factories import T0, FakeClock

W = 60.0


def feed(detector: RepeatedExpirations, times: list[float]) -> list[Trigger | None]:
    """Observe expirations at the given times, remembering each like the app does."""
    history: list[Expiry] = []
    fired: list[Trigger | None] = []
    for i, t in enumerate(times):
        mark = Expiry(t, f"e{i}", f"s{i}", "idle_timeout")
        remember, trigger = detector.observe(history, mark)
        if remember:
            history.append(mark)
        fired.append(trigger)
    return fired


# --- repeated expirations ------------------------------------------------------------------


def test_count_minus_one_expirations_within_the_window_do_not_fire() -> None:
    """N-1 expirations are normal churn, however close together."""
    clock = FakeClock()
    times = [clock(), clock.advance(1), clock.advance(1)]
    assert [None, None, None] == feed(RepeatedExpirations(4, W), times)


def test_count_expirations_within_the_window_fire_on_the_last() -> None:
    """The Nth expiration inside W is the burst the detector exists for."""
    clock = FakeClock()
    times = [clock(), clock.advance(20), clock.advance(20)]
    fired = feed(RepeatedExpirations(3, W), times)
    assert [None, None] == fired[:2]
    trigger = fired[2]
    assert trigger is not None
    assert ("repeated_expirations", "medium") == (trigger.kind, trigger.severity)
    assert (T0, T0 + 40) == (trigger.first_seen, trigger.last_seen)
    assert ("e0", "e1", "e2") == trigger.event_ids
    assert ("s0", "s1", "s2") == trigger.session_ids
    assert 3 == trigger.counts["expirations"]


def test_expirations_exactly_one_window_apart_still_count_together() -> None:
    """The window is inclusive: marks W seconds apart are within W."""
    times = [T0, T0 + 30, T0 + W]
    assert feed(RepeatedExpirations(3, W), times)[2] is not None


def test_count_expirations_spread_over_more_than_the_window_do_not_fire() -> None:
    """A slow trickle of timeouts (N spread over W + 1 ms) is not a burst."""
    times = [T0, T0 + 30, T0 + W + 0.001]
    assert [None, None, None] == feed(RepeatedExpirations(3, W), times)


def test_an_expiry_arriving_out_of_order_completes_its_burst() -> None:
    """Expirations of one user may be emitted out of event-time order; the burst still counts."""
    times = [T0 + 50, T0 + 100, T0 + 10]  # the late one lies within W of the first only
    fired = feed(RepeatedExpirations(3, W), times)
    assert [None, None, None] == fired
    fired = feed(RepeatedExpirations(3, W), [T0 + 50, T0 + 55, T0 + 10])
    assert fired[2] is not None
    assert (T0 + 10, T0 + 55) == (fired[2].first_seen, fired[2].last_seen)


def test_a_replayed_expiry_is_neither_remembered_nor_counted() -> None:
    """After a crash the worker re-reads events whose state was already written."""
    detector = RepeatedExpirations(2, W)
    first = Expiry(T0, "e0", "s0", "idle_timeout")
    assert (False, None) == detector.observe([first], first)


def test_twice_the_threshold_raises_the_severity() -> None:
    """2N timeouts in one window is no longer a flaky client."""
    fired = feed(RepeatedExpirations(2, W), [T0, T0 + 1, T0 + 2, T0 + 3])
    assert ["medium", "medium", "high"] == [t.severity for t in fired[1:] if t is not None]


# --- privilege escalation ------------------------------------------------------------------

LADDER = PrivilegeLadder([10, 30, 40, 90])


def grant(t: float, before: int, after: int, event_id: str, **kw: object) -> Grant:
    return Grant(t, event_id, LADDER.rise(before, after), before, after, **kw)  # type: ignore[arg-type]


def test_privilege_ranks_follow_the_role_catalog() -> None:
    """min_levels counts steps on the catalog's ladder, not privilege points."""
    assert [0, 1, 1, 2, 3, 4, 4] == [LADDER.rank(p) for p in (0, 10, 20, 30, 40, 90, 1000)]
    assert (2, 0) == (LADDER.rise(10, 40), LADDER.rise(90, 10))


def test_a_single_change_of_min_levels_fires() -> None:
    """viewer -> support climbs two ranks at once."""
    esc = Escalation(2, 120, 30)
    remember, trigger = esc.role_changed([], grant(T0, 10, 40, "g1", roles=("support",)))
    assert trigger is not None and remember is not None
    assert ("privilege_escalation", "medium") == (trigger.kind, trigger.severity)
    assert (2, 10, 40) == tuple(
        trigger.counts[k] for k in ("levels", "privilege_before", "privilege_after")
    )
    assert ("support",) == trigger.roles
    assert remember.flagged


def test_one_rank_alone_does_not_fire() -> None:
    """Ordinary promotions stay quiet."""
    remember, trigger = Escalation(2, 120, 30).role_changed([], grant(T0, 10, 30, "g1"))
    assert trigger is None
    assert remember is not None and not remember.flagged


def test_stepwise_grants_within_the_window_add_up() -> None:
    """Two one-rank grants inside the window are one two-rank escalation."""
    clock = FakeClock()
    esc = Escalation(2, 120, 30)
    first, _ = esc.role_changed([], grant(clock(), 0, 10, "g1", roles=("viewer",)))
    assert first is not None
    _, trigger = esc.role_changed(
        [first], grant(clock.advance(120), 10, 30, "g2", roles=("editor",))
    )
    assert trigger is not None
    assert ("g1", "g2") == trigger.event_ids
    assert (T0, T0 + 120) == (trigger.first_seen, trigger.last_seen)
    assert (2, 2, 0, 30) == tuple(
        trigger.counts[k] for k in ("levels", "changes", "privilege_before", "privilege_after")
    )
    assert ("viewer", "editor") == trigger.roles


def test_stepwise_grants_further_apart_than_the_window_do_not_add_up() -> None:
    """Promotions months apart are not an escalation."""
    esc = Escalation(2, 120, 30)
    first, _ = esc.role_changed([], grant(T0, 0, 10, "g1"))
    assert first is not None
    assert None is esc.role_changed([first], grant(T0 + 120.001, 10, 30, "g2"))[1]


def test_a_sensitive_grant_fires_at_high_severity_whatever_the_rise() -> None:
    """Sensitive roles (admin) are always worth a look."""
    _, trigger = Escalation(5, 120, 30).role_changed(
        [], grant(T0, 40, 90, "g1", roles=("admin",), sensitive=("admin",))
    )
    assert trigger is not None
    assert "high" == trigger.severity
    assert "sensitive role granted: admin" in trigger.summary


def test_a_self_grant_is_always_high_severity() -> None:
    """An actor granting itself roles bypassed separation of duties, even for a small role."""
    _, trigger = Escalation(2, 120, 30).role_changed(
        [], grant(T0, 10, 10, "g1", roles=("viewer",), self_grant=True)
    )
    assert trigger is not None
    assert ("high", 1) == (trigger.severity, trigger.counts["self_grant"])


def test_a_self_granted_sensitive_role_is_critical() -> None:
    """Both red flags at once."""
    _, trigger = Escalation(2, 120, 30).role_changed(
        [], grant(T0, 10, 90, "g1", roles=("admin",), sensitive=("admin",), self_grant=True)
    )
    assert trigger is not None
    assert "critical" == trigger.severity


def test_removing_roles_is_not_remembered() -> None:
    """A drop in privilege is never an escalation and never part of one."""
    assert (None, None) == Escalation(2, 120, 30).role_changed([], grant(T0, 90, 10, "g1"))


def test_a_high_risk_operation_soon_after_a_grant_fires() -> None:
    """Grant, then use it for money movement within minutes: the classic takeover pattern."""
    clock = FakeClock()
    esc = Escalation(2, 120, 30)
    remembered, trigger = esc.role_changed([], grant(clock(), 10, 30, "g1", roles=("editor",)))
    assert trigger is None and remembered is not None
    op = Operation(clock.advance(30), "op1", "sess-1", "payments.send", "/acct/1", True)
    fired = esc.high_risk([remembered], op)
    assert fired is not None
    assert ("privilege_escalation", "high") == (fired.kind, fired.severity)
    assert (("g1", "op1"), ("sess-1",)) == (fired.event_ids, fired.session_ids)
    assert (T0, T0 + 30) == (fired.first_seen, fired.last_seen)
    assert "payments.send" in fired.summary


def test_a_high_risk_operation_after_high_risk_within_does_not_fire() -> None:
    """Using a role granted long ago is ordinary work."""
    esc = Escalation(2, 120, 30)
    remembered, _ = esc.role_changed([], grant(T0, 10, 30, "g1"))
    assert remembered is not None
    op = Operation(T0 + 30.001, "op1", "sess-1", "payments.send", "", True)
    assert None is esc.high_risk([remembered], op)


def test_a_high_risk_operation_after_a_flagged_grant_is_critical() -> None:
    """An escalation that already alerted, then acted on: the worst case."""
    esc = Escalation(2, 120, 30)
    remembered, _ = esc.role_changed([], grant(T0, 10, 90, "g1", sensitive=("admin",)))
    assert remembered is not None
    fired = esc.high_risk([remembered], Operation(T0 + 5, "op1", "s", "admin.users", "", False))
    assert fired is not None
    assert "critical" == fired.severity
    assert 0 == fired.counts["allowed"]


# --- concurrent sessions -------------------------------------------------------------------


def test_sessions_above_the_maximum_fire_and_at_the_maximum_do_not() -> None:
    """max live sessions is allowed; one more is the anomaly."""
    clock = FakeClock()
    det = ConcurrentSessions(2)
    live: dict[str, tuple[float, float]] = {}
    fired = []
    for sid in ("a", "b", "c"):
        now = clock.advance(1)
        changed, trigger = det.started(live, sid, now + 1000, now, f"ev-{sid}")
        assert changed is not None
        live = changed
        fired.append(trigger)
    assert [None, None] == fired[:2]
    trigger = fired[2]
    assert trigger is not None
    assert ("concurrent_sessions", 3, 2) == (
        trigger.kind,
        trigger.counts["live_sessions"],
        trigger.counts["max"],
    )
    assert ("a", "b", "c") == trigger.session_ids
    assert (T0 + 1, T0 + 3) == (trigger.first_seen, trigger.last_seen)


def test_ended_sessions_free_their_slot() -> None:
    """Logging out before logging in elsewhere is no anomaly."""
    det = ConcurrentSessions(1)
    live, _ = det.started({}, "a", T0 + 100, T0, "e1")
    assert live is not None
    after_end = det.ended(live, "a", T0 + 1)
    assert {} == after_end
    assert ({"b": (T0 + 2, T0 + 102)}, None) == det.started({}, "b", T0 + 102, T0 + 2, "e2")


def test_sessions_past_their_absolute_deadline_no_longer_count() -> None:
    """No session outlives its absolute deadline, even if its end record never arrives."""
    det = ConcurrentSessions(1)
    live, _ = det.started({}, "a", T0 + 10, T0, "e1")
    assert live is not None
    changed, trigger = det.started(live, "b", T0 + 30, T0 + 10, "e2")
    assert (None, {"b": (T0 + 10, T0 + 30)}) == (trigger, changed)


def test_a_replayed_session_start_changes_nothing() -> None:
    """Duplicates from a replay must not inflate the count."""
    det = ConcurrentSessions(1)
    live, _ = det.started({}, "a", T0 + 100, T0, "e1")
    assert live is not None
    assert (None, None) == det.started(live, "a", T0 + 100, T0, "e1")


# --- ended or unknown session used ---------------------------------------------------------


def test_use_of_an_ended_session_names_action_and_resource() -> None:
    """The responder needs to know what was attempted, and where."""
    trigger = ended_session_used(T0, "ev", "sess-9", "docs.read", "/doc/7", "logout")
    assert ("ended_session_used", "high") == (trigger.kind, trigger.severity)
    assert "docs.read on /doc/7 with a session ended by logout" == trigger.summary
    assert (("ev",), ("sess-9",)) == (trigger.event_ids, trigger.session_ids)


def test_use_after_a_timeout_is_medium_and_of_an_unknown_session_high() -> None:
    """A stale browser tab after a timeout is common; a never-issued session id is not."""
    timed_out = ended_session_used(T0, "e1", "s", "docs.read", "", "idle_timeout")
    unknown = ended_session_used(T0, "e2", "s", "docs.read", "", None)
    assert ("medium", "high") == (timed_out.severity, unknown.severity)
    assert "docs.read on (no resource) with an unknown session" == unknown.summary
    assert 1 == unknown.counts["unknown_session"]
