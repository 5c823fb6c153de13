"""Audit records through the engine and its table layout, on dicts instead of faust tables."""

from __future__ import annotations

from typing import Any

from sessionwarden.contracts.codec import decode_alert, decode_audit_event, encode, encode_dict
from sessionwarden.contracts.outputs import Alert, AuditEvent
from sessionwarden.detect.engine import Engine, Outcome
from sessionwarden.detect.tables import SESSIONS, TABLES, Tables, apply_writes, bucket_range
from tests.unit.detect.factories import (
    T0,
    FakeClock,
    eid,
    ended,
    ended_used,
    foreign,
    high_risk,
    policy,
    role_changed,
    started,
)
from tests.unit.sdk.fakes import session_risk_changed


class Harness:
    """An engine over dict tables; writes are applied like the app applies them."""

    def __init__(self, tables: Tables | None = None) -> None:
        self.tables: Tables = tables if tables is not None else {name: {} for name in TABLES}
        self.engine = Engine(policy())
        self.state = self.engine.state(self.tables)

    def judge(self, record: AuditEvent, apply: bool = True) -> Outcome:
        outcome = self.engine.process(record, self.state, emitted_at=T0 + 10_000)
        if apply:
            apply_writes(self.tables, outcome.writes)
        return outcome

    def alerts(self, *records: AuditEvent) -> list[Alert]:
        found = []
        for record in records:
            found += [decode_alert(encode_dict(doc)) for doc in self.judge(record).alerts]
        return found


def test_expirations_straddling_a_bucket_boundary_are_one_window() -> None:
    """Buckets are tumbling but the window slides: a burst across a boundary is still seen."""
    h = Harness()
    boundary = bucket_range(60)(T0)[0] + 60
    alerts = h.alerts(
        ended("s1", "alice", boundary - 20),
        ended("s2", "alice", boundary + 10),
        ended("s3", "alice", boundary + 30),
    )
    assert ["repeated_expirations"] == [a.kind for a in alerts]
    assert boundary - 20 == alerts[0].first_seen.timestamp()


def test_logouts_and_revocations_are_not_expirations() -> None:
    """Only idle and absolute timeouts count towards repeated expirations."""
    h = Harness()
    reasons = ["logout", "permissions_revoked", "step_up_required", "idle_timeout"]
    records = [ended(f"s{i}", "alice", T0 + i, reason=r) for i, r in enumerate(reasons)]
    assert [] == h.alerts(*records)


def test_expiration_counts_survive_a_restart_on_the_same_tables() -> None:
    """A new worker restored from the changelog continues the count where the old one was."""
    h = Harness()
    assert [] == h.alerts(ended("s1", "alice", T0), ended("s2", "alice", T0 + 1))
    restarted = Harness(h.tables)
    assert ["repeated_expirations"] == [
        a.kind for a in restarted.alerts(ended("s3", "alice", T0 + 2))
    ]


def test_a_replay_after_the_writes_emits_nothing_and_before_them_the_same_alert() -> None:
    """At-least-once input: a replay either re-emits the identical alert or nothing at all."""
    h = Harness()
    h.alerts(ended("s1", "alice", T0), ended("s2", "alice", T0 + 1))
    third = ended("s3", "alice", T0 + 2)
    unapplied = h.judge(third, apply=False)  # crash after the send, before the writes
    replayed = h.judge(third)
    assert [a["alert_id"] for a in unapplied.alerts] == [a["alert_id"] for a in replayed.alerts]
    assert 1 == len(replayed.alerts)
    again = h.judge(third)  # crash after the writes, before the offset commit
    assert ([], []) == (again.alerts, again.writes)


def test_use_of_an_ended_session_alerts_once_per_cooldown_and_counts_the_rest() -> None:
    """Rare but repeated: the first is reported, repeats are counted into the next report."""
    h = Harness()
    clock = FakeClock()
    first = h.alerts(ended_used("alice", "s1", clock()))
    held = h.alerts(*(ended_used("alice", "s1", clock.advance(60)) for _ in range(3)))
    after = h.alerts(ended_used("alice", "s1", clock.advance(120)))
    assert ([0], [], [3]) == (
        [a.suppressed for a in first],
        held,
        [a.suppressed for a in after],
    )
    assert "docs.read on /doc/7 with a session ended by logout" == after[0].summary


def test_use_of_an_unknown_session_is_reported_as_unknown() -> None:
    """session_state unknown means the session id was never issued (or long forgotten)."""
    alerts = Harness().alerts(ended_used("alice", "forged", T0, reason=None))
    assert ["high"] == [a.severity for a in alerts]
    assert "with an unknown session" in alerts[0].summary


def test_concurrent_sessions_fire_above_the_maximum_and_ends_free_slots() -> None:
    """max=2: a third live session alerts; after an end, a new one fits again."""
    h = Harness()
    alerts = h.alerts(
        started("a", "alice", T0),
        started("b", "alice", T0 + 1),
        ended("a", "alice", T0 + 2, reason="logout"),
        started("c", "alice", T0 + 3),
    )
    assert [] == alerts
    over = h.alerts(started("d", "alice", T0 + 4))
    assert ["concurrent_sessions"] == [a.kind for a in over]
    assert ["b", "c", "d"] == over[0].evidence.session_ids


def test_sessions_ended_on_a_signal_free_their_slot_and_are_not_expirations() -> None:
    """Reason ``signal`` is an end like a logout: no repeated-expirations count, one slot
    fewer; the enforcer's session_risk_changed record decodes and changes nothing here."""
    h = Harness()
    h.judge(started("a", "alice", T0))
    h.judge(started("b", "alice", T0 + 1))
    ends = [ended("a", "alice", T0 + 2, reason="signal")]
    ends += [ended(f"x{i}", "alice", T0 + 3 + i, reason="signal") for i in range(3)]
    assert [] == h.alerts(*ends)
    record = session_risk_changed("b", T0 + 5).model_copy(update={"user_id": "alice"})
    risk = decode_audit_event(encode(record))
    outcome = h.judge(risk)
    assert ([], []) == (outcome.alerts, outcome.writes)
    assert ["b"] == [s[0] for s in h.state.sessions(("acme", "alice"))]


def test_the_live_session_key_is_deleted_when_the_last_session_ends() -> None:
    """Users without live sessions leave no state behind (a tombstone in the changelog)."""
    h = Harness()
    h.judge(started("a", "alice", T0))
    assert ("acme", "alice") in h.tables[SESSIONS]
    h.judge(ended("a", "alice", T0 + 1, reason="logout"))
    assert {} == h.tables[SESSIONS]


def test_stepwise_escalation_from_records_uses_the_catalog_ranks() -> None:
    """viewer (10) then editor (30): two ranks within the window, from two grants."""
    h = Harness()
    alerts = h.alerts(
        role_changed("bob", T0, 0, 10, ["viewer"]),
        role_changed("bob", T0 + 60, 10, 30, ["editor"]),
    )
    assert [("privilege_escalation", "medium")] == [(a.kind, a.severity) for a in alerts]
    assert 2 == alerts[0].evidence.counts["levels"]
    assert ["viewer", "editor"] == alerts[0].evidence.roles


def test_a_self_grant_from_records_is_high_severity() -> None:
    """actor == user_id with a grant is a self-grant."""
    alerts = Harness().alerts(role_changed("bob", T0, 10, 10, ["viewer"], actor="bob"))
    assert [("privilege_escalation", "high")] == [(a.kind, a.severity) for a in alerts]
    assert "granted by the user itself" in alerts[0].summary


def test_a_sensitive_grant_then_a_high_risk_operation_alerts_twice() -> None:
    """The follow-up is critical, so it breaks through the cooldown of the grant's alert."""
    h = Harness()
    alerts = h.alerts(
        role_changed("bob", T0, 10, 90, ["admin"], sensitive=["admin"]),
        high_risk("bob", "sess-1", T0 + 20, action="admin.users"),
    )
    assert [("high", 0), ("critical", 0)] == [(a.severity, a.suppressed) for a in alerts]
    assert alerts[0].alert_id != alerts[1].alert_id
    assert ["sess-1"] == alerts[1].evidence.session_ids


def test_a_high_risk_operation_without_a_recent_grant_is_quiet() -> None:
    """High-risk operations on their own are the enforcer's business (step-up), not an alert."""
    h = Harness()
    alerts = h.alerts(
        role_changed("bob", T0, 10, 30, ["editor"]),
        high_risk("bob", "sess-1", T0 + 31),
    )
    assert [] == alerts


def test_users_do_not_share_state() -> None:
    """Two users' expirations never add up."""
    h = Harness()
    records: list[Any] = [ended(f"s{i}", f"user-{i % 2}", T0 + i) for i in range(4)]
    assert [] == h.alerts(*records)


def test_a_replayed_role_change_is_not_counted_twice() -> None:
    """The same event id twice is one grant."""
    h = Harness()
    event_id = eid()
    assert [] == h.alerts(
        role_changed("bob", T0, 0, 10, ["viewer"], event_id=event_id),
        role_changed("bob", T0, 0, 10, ["viewer"], event_id=event_id),
    )


def test_tenants_do_not_share_state() -> None:
    """The same user id in two tenants is two users: their expirations never add up."""
    h = Harness()
    records: list[Any] = [
        ended(f"s{i}", "alice", T0 + i, tenant="a" if i % 2 else "b") for i in range(4)
    ]
    assert [] == h.alerts(*records)


def test_concurrent_sessions_are_counted_per_tenant() -> None:
    """max=2: two sessions in tenant a and one in tenant b are no excess."""
    h = Harness()
    assert [] == h.alerts(
        started("s1", "alice", T0, tenant="a"),
        started("s2", "alice", T0 + 1, tenant="a"),
        started("s1", "alice", T0 + 2, tenant="b"),
    )
    h.judge(ended("s1", "alice", T0 + 3, reason="logout", tenant="b"))
    over = h.alerts(started("s3", "alice", T0 + 4, tenant="a"))
    assert [("a", ["s1", "s2", "s3"])] == [(a.tenant, a.evidence.session_ids) for a in over]


def test_an_event_on_another_users_session_alerts() -> None:
    """A request carrying someone else's session id is a possible stolen session."""
    alerts = Harness().alerts(foreign("mallory", "alice", "s-alice", T0))
    assert [("foreign_session_event", "high", "mallory", ["s-alice"])] == [
        (a.kind, a.severity, a.user_id, a.evidence.session_ids) for a in alerts
    ]
    assert "owned by alice" in alerts[0].summary
