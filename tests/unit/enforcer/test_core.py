"""The pure enforcement decision, driven with plain numbers and a fake clock."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import TypeAdapter

from sessionwarden.contracts.outputs import AuditEvent, RevocationRecord
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from tests.unit.enforcer.factories import (
    T0,
    activity,
    at,
    login,
    logout,
    policy,
    role_change,
)
from tests.unit.enforcer.harness import Harness

AUDIT = TypeAdapter(AuditEvent)
REVOCATION = TypeAdapter(RevocationRecord)


def test_idle_session_is_revoked_at_its_idle_deadline() -> None:
    """A session with no activity ends exactly idle-timeout after its last activity."""
    h = Harness()
    h.feed(login(0))
    assert 0 == h.tick(99.9)
    assert 1 == h.tick(100.0)
    assert [("s1", "idle_timeout", 100.0)] == h.ended()


def test_absolute_deadline_ends_an_active_session() -> None:
    """Activity never extends a session past login + absolute timeout."""
    h = Harness()
    h.feed(login(0, risk="high"))  # absolute 400s
    for t in range(50, 400, 50):
        h.feed(activity(t))
        h.tick(t)
    assert [] == h.ended()
    h.tick(400)
    assert [("s1", "absolute_timeout", 400.0)] == h.ended()


def test_the_earlier_of_both_deadlines_wins() -> None:
    """Idle at 100s comes before absolute at 400s: the idle deadline ends the session."""
    h = Harness()
    h.feed(login(0, risk="high"))
    h.tick(1000)
    assert [("s1", "idle_timeout", 100.0)] == h.ended()


def test_activity_extends_idle_only() -> None:
    """Activity at 90s moves the idle deadline to 190s; the absolute deadline stays fixed."""
    h = Harness()
    h.feed(login(0, risk="high"))
    h.feed(activity(90))
    assert 0 == h.tick(189)
    assert 1 == h.tick(190)
    assert [("s1", "idle_timeout", 190.0)] == h.ended()
    started = h.audits("session_started")[0]
    assert 400.0 == started["absolute_timeout_s"]


def test_user_type_override_sets_a_shorter_idle() -> None:
    """Admins get the policy's 50s idle timeout."""
    h = Harness()
    h.feed(login(0, user_type="admin"))
    h.tick(50)
    assert [("s1", "idle_timeout", 50.0)] == h.ended()


def test_logout_revokes_with_reason_logout() -> None:
    """Logout ends the session at once and cites the logout event as its cause."""
    h = Harness()
    h.feed(login(0))
    out = logout(30)
    h.feed(out)
    assert [("s1", "logout", 30.0)] == h.ended()
    assert out.event_id == h.revocations()[0]["cause_event_id"]
    assert 0 == h.tick(500)


def test_role_removal_revokes_every_live_session_holding_the_role() -> None:
    """Removing a role ends all of the user's sessions that hold it, and only those."""
    h = Harness()
    h.feed(
        login(0, "a", roles=("viewer", "editor")),
        login(1, "b", roles=("editor",)),
        login(2, "c", roles=("viewer",)),
        login(3, "x", user="u2", roles=("editor",)),
    )
    h.feed(role_change(10, removed=("editor",)))
    assert [("a", "permissions_revoked", 10.0), ("b", "permissions_revoked", 10.0)] == sorted(
        h.ended()
    )
    assert [["editor"], ["editor"]] == [r["roles_removed"] for r in h.revocations()]
    changed = h.audits("role_changed")[0]
    assert (30, 10, 3) == (
        changed["privilege_before"],
        changed["privilege_after"],
        changed["live_sessions"],
    )


def test_grant_emits_revalidation_not_a_silent_upgrade() -> None:
    """A grant keeps the session alive but tells services to refresh its claims."""
    h = Harness()
    h.feed(login(0, "a"), login(1, "b"))
    h.feed(role_change(5, granted=("admin",)))
    revals = [o.value for o in h.outputs if o.value["type"] == "revalidation"]
    assert ["a", "b"] == sorted(r["session_id"] for r in revals)
    assert [["admin"], ["admin"]] == [r["roles_granted"] for r in revals]
    assert ["viewer", "admin"] == revals[0]["roles"]
    changed = h.audits("role_changed")[0]
    assert (10, 90, ["admin"]) == (
        changed["privilege_before"],
        changed["privilege_after"],
        changed["sensitive_granted"],
    )
    assert [] == h.ended()


def test_stale_authentication_on_high_risk_operation_requires_step_up() -> None:
    """A payment with authentication older than 60s revokes the session (step_up_required)."""
    h = Harness()
    h.feed(login(0, auth_age=10))
    h.feed(activity(20, action="payments.send"))
    assert [] == h.ended()
    h.feed(activity(35))
    h.feed(activity(52, action="payments.send"))
    assert [("s1", "step_up_required", 52.0)] == h.ended()
    hr = h.audits("high_risk_operation")
    assert [True, False] == [a["allowed"] for a in hr]
    assert [30.0, 62.0] == [a["auth_age_s"] for a in hr]


def test_fresh_high_risk_operation_shortens_the_idle_window() -> None:
    """After a payment the session lives under the rule's 20s idle timeout."""
    h = Harness()
    h.feed(login(0))
    h.feed(activity(10, action="payments.send"))
    assert 0 == h.tick(29.9)
    assert 1 == h.tick(30)
    assert [("s1", "idle_timeout", 30.0)] == h.ended()


def test_repeated_event_id_changes_nothing() -> None:
    """Producers retry: the same event id twice must act once."""
    h = Harness()
    h.feed(login(0, "a"), login(0, "b"))
    eid = uuid.uuid4()
    h.feed(role_change(5, granted=("editor",), event_id=eid))
    h.feed(role_change(5, granted=("editor",), event_id=eid))
    assert 1 == len(h.audits("role_changed"))
    assert 2 == len([o for o in h.outputs if o.value["type"] == "revalidation"])
    aid = uuid.uuid4()
    h.feed(activity(50, "a", event_id=aid))
    h.feed(activity(50, "a", event_id=aid))
    assert 2 == h.enforcer.stats["duplicate"]  # the role change and the activity


def test_role_change_dedupe_survives_a_restore() -> None:
    """Role-change ids are in the changelog, so a redelivery after restart is still a no-op."""
    h = Harness()
    h.feed(login(0))
    eid = uuid.uuid4()
    h.feed(role_change(5, granted=("editor",), event_id=eid))
    fresh = PartitionEnforcer(policy())
    for key, value in h.changelog:
        fresh.state.restore(key, value)
    fresh.state.finish_restore()
    fresh.state.begin()
    fresh.apply(role_change(5, granted=("editor",), event_id=eid), T0 + 6)
    assert [] == fresh.state.changelog()
    fresh.state.commit()
    assert [] == fresh.state.take_outputs()


def test_late_event_never_resurrects_an_ended_session() -> None:
    """After logout, a replayed login or late activity for the session changes nothing."""
    h = Harness()
    first = login(0)
    h.feed(first)
    h.feed(logout(10))
    h.feed(login(0, event_id=uuid.uuid4()), now=11)
    h.feed(activity(9), now=12)  # made before the logout: late, not an anomaly
    assert [] == h.audits("ended_session_used")
    assert 0 == h.tick(10_000)
    assert 1 == len(h.revocations())
    assert "Ended" == type(h.enforcer.state.sessions[("acme", "s1")]).__name__


def test_activity_after_the_end_is_flagged_for_the_detectors() -> None:
    """Use of an ended session (token replay?) and of an unknown one both go to the audit."""
    h = Harness()
    h.feed(login(0))
    h.feed(logout(10))
    h.feed(activity(20, action="docs.write"))
    h.feed(activity(21, sid="never-seen", action="docs.read"))
    used = h.audits("ended_session_used")
    assert [
        ("s1", "ended", "logout", "docs.write"),
        ("never-seen", "unknown", None, "docs.read"),
    ] == [(u["session_id"], u["session_state"], u["ended_reason"], u["action"]) for u in used]


def test_activity_past_the_deadline_ends_the_session_at_its_deadline() -> None:
    """A backlog delivers activity at 150s for a session idle since 0s: it ended at 100s."""
    h = Harness()
    h.feed(login(0))
    h.feed(activity(150), now=200)
    assert [("s1", "idle_timeout", 100.0)] == h.ended()
    assert 1 == len(h.audits("ended_session_used"))


def test_future_timestamp_beyond_skew_is_rejected() -> None:
    """An event 31s in the future (tolerance 30s) is not trusted to extend a session."""
    h = Harness()
    result = h.feed(login(0), activity(61), now=30)
    assert None is result[0]
    assert result[1] is not None and "31.0s ahead of the time it was received" in result[1]


def test_lag_rule_fires_only_up_to_the_given_horizon() -> None:
    """The shell passes a horizon; nothing due after it fires, however late the wall clock."""
    h = Harness()
    h.feed(login(0, "a"), login(50, "b"))
    h.enforcer.state.begin()
    assert 1 == h.enforcer.fire_due(T0 + 120, T0 + 10_000)
    h.enforcer.state.commit()
    assert [("a", "idle_timeout", 100.0)] == [
        (o.value["session_id"], o.value["reason"], o.value["effective_at"].timestamp() - T0)
        for o in h.enforcer.state.take_outputs()
        if o.value["type"] == "revocation"
    ]


def test_fire_due_limit_spreads_a_mass_expiry_over_batches() -> None:
    """A burst of expiries is bounded per transaction, earliest first, and none is lost."""
    h = Harness()
    h.feed(*[login(i * 0.01, f"s{i}", user=f"u{i}") for i in range(10)])
    e = h.enforcer
    e.state.begin()
    assert 4 == e.fire_due(T0 + 500, T0 + 500, limit=4)
    e.state.commit()
    first = [
        o.value["session_id"] for o in e.state.take_outputs() if o.value["type"] == "revocation"
    ]
    assert ["s0", "s1", "s2", "s3"] == first
    e.state.begin()
    assert 6 == e.fire_due(T0 + 500, T0 + 500, limit=100)
    e.state.commit()


def test_due_by_sees_through_stale_heap_entries() -> None:
    """Activity moves a deadline later; asking what is due must not report the stale one."""
    h = Harness()
    h.feed(login(0, "a"), login(0, "b", user="u2"))
    h.feed(activity(60, "a"), activity(70, "b", user="u2"))
    assert None is h.enforcer.state.due_by(T0 + 159)
    assert T0 + 160 == h.enforcer.state.due_by(T0 + 165)
    assert T0 + 160 == h.enforcer.state.due_by(T0 + 500)


def test_aborted_batch_leaves_state_exactly_as_before() -> None:
    """An aborted transaction must also undo its in-memory changes, or state and Kafka diverge."""
    h = Harness()
    h.feed(login(0, "a", roles=("editor",)), login(0, "b"))
    snapshot = _state(h.enforcer)
    e = h.enforcer
    e.state.begin()
    e.apply(activity(50, "a"), T0 + 50)
    e.apply(role_change(60, removed=("editor",), granted=("viewer",)), T0 + 60)
    e.apply(login(61, "c"), T0 + 61)
    e.fire_due(T0 + 300, T0 + 300)
    assert snapshot != _state(e)
    e.state.abort()
    assert snapshot == _state(e)
    assert [] == e.state.take_outputs()
    # the aborted events are not remembered as duplicates: the replay applies them
    h.feed(activity(50, "a"), now=50)
    h.tick(149)
    assert [("b", "idle_timeout", 100.0)] == h.ended()


def test_an_aborted_batch_undoes_every_field_a_live_session_changes() -> None:
    """Activity, a high-risk action (recent outputs, the shorter idle window) and a grant
    (roles) change a live session in place; an abort must put each field back."""
    h = Harness()
    h.feed(login(0, "a", roles=("viewer",)))
    snapshot = _state(h.enforcer)
    e = h.enforcer
    e.state.begin()
    e.apply(activity(10, "a", action="payments.send"), T0 + 10)
    e.apply(role_change(11, granted=("editor",)), T0 + 11)
    e.apply(activity(12, "a"), T0 + 12)
    assert snapshot != _state(e)
    e.state.abort()
    assert snapshot == _state(e)
    h.tick(99)  # the original idle window (100 s), not the high-risk one (20 s)
    assert [] == h.ended()
    h.tick(101)
    assert [("a", "idle_timeout", 100.0)] == h.ended()


def test_every_output_matches_its_schema() -> None:
    """Outputs are built as dicts for speed; each must still validate against the contract."""
    h = Harness()
    h.feed(login(0, "a", roles=("editor",)), login(0, "b"))
    h.feed(activity(5, "b", action="payments.x"), role_change(6, granted=("admin",)))
    h.feed(role_change(7, removed=("editor",)), logout(8, "b"), activity(9, "a"))
    kinds = set()
    for emit in h.outputs:
        adapter = REVOCATION if emit.topic == "revocations" else AUDIT
        model = adapter.validate_python(emit.value)
        kinds.add(model.type)
    assert {
        "revocation",
        "revalidation",
        "session_started",
        "session_ended",
        "role_changed",
        "high_risk_operation",
        "ended_session_used",
    } == kinds


def test_revocation_id_is_deterministic() -> None:
    """Same session, cause and deadline give the same id, so a re-emission is a no-op."""
    ids = []
    for _ in range(2):
        h = Harness()
        h.feed(login(0))
        h.tick(100)
        ids.append(h.revocations()[0]["revocation_id"])
    assert ids[0] == ids[1]


def test_restore_from_changelog_rebuilds_sessions_and_deadlines() -> None:
    """A new owner of the partition enforces the same deadlines from the changelog alone."""
    h = Harness()
    h.feed(login(0, "a"), login(0, "b"), login(0, "c", user="u2"))
    h.feed(activity(60, "a"), logout(61, "c", user="u2"))
    fresh = PartitionEnforcer(policy())
    for key, value in h.changelog:
        fresh.state.restore(key, value)
    fresh.state.finish_restore()
    before = _state(h.enforcer, watermark=False)
    del before["users"][("acme", "u2")]  # no live session and no role change: nothing to remember
    assert before == _state(fresh, watermark=False)
    fresh.state.begin()
    fresh.fire_due(T0 + 160, T0 + 160)
    fresh.state.commit()
    ended = sorted(
        (o.value["session_id"], o.value["effective_at"].timestamp() - T0)
        for o in fresh.state.take_outputs()
        if o.value["type"] == "revocation"
    )
    assert [("a", 160.0), ("b", 100.0)] == ended


def test_ended_markers_and_idle_users_are_forgotten_with_tombstones() -> None:
    """Memory stays bounded: markers go after absolute deadline + margin, users after that."""
    h = Harness()
    h.feed(login(0))
    h.feed(logout(10))
    e = h.enforcer
    e.state.begin()
    assert 0 == e.state.forget_expired(T0 + 1999)
    assert 1 == e.state.forget_expired(T0 + 2000)  # the user: absolute deadline + max absolute
    assert 0 == e.state.forget_expired(T0 + 4599)
    assert 1 == e.state.forget_expired(T0 + 4600)  # the marker: absolute deadline + 1 h margin
    changes = dict(e.state.changelog())
    e.state.commit()
    assert {'["s","acme","s1"]': None} == changes  # the user never had a record of its own
    assert ({}, {}) == (e.state.sessions, e.state.users)


def test_users_of_live_sessions_hold_no_forget_entry_until_their_last_session_ends() -> None:
    """A forget entry per live user would cost ~100 bytes each; the user is queued for
    forgetting when its last session ends, and is then forgotten on time."""
    h = Harness()
    h.feed(login(0, "a"), login(0, "b"), login(0, "c", user="u2"))
    h.feed(role_change(5, granted=("editor",)))
    e = h.enforcer
    assert [] == [entry for entry in e.state._forget if entry[1] == "u"]
    h.feed(logout(10, "a"))
    assert [] == [entry for entry in e.state._forget if entry[1] == "u"]
    h.feed(logout(11, "b"), logout(12, "c", user="u2"))
    assert 2 == len([entry for entry in e.state._forget if entry[1] == "u"])
    e.state.begin()
    e.state.forget_expired(T0 + 1999)
    assert {"u1", "u2"} == {key[1] for key in e.state.users}
    e.state.forget_expired(T0 + 2000)  # absolute deadline (1000 s) + max absolute (1000 s)
    assert {} == e.state.users
    e.state.commit()


def test_only_users_with_role_changes_get_a_changelog_record() -> None:
    """Users are derived from their sessions on restore; a role change needs its own record,
    and that record is tombstoned when the user is forgotten."""
    h = Harness()
    h.feed(login(0, "a"), login(0, "b", user="u2"))
    assert [] == [k for k, _ in h.changelog if k.startswith('["u"')]
    h.feed(role_change(5, user="u2", granted=("editor",)))
    assert ['["u","acme","u2"]'] == [
        k for k, v in h.changelog if k.startswith('["u"') and v is not None
    ]
    h.feed(logout(6, "b", user="u2"))
    e = h.enforcer
    e.state.begin()
    e.state.forget_expired(T0 + 5 + 86_400 + 1000)
    assert {'["u","acme","u2"]': None} == {
        k: v for k, v in e.state.changelog() if k.startswith('["u"')
    }
    e.state.commit()


def _state(e: PartitionEnforcer, watermark: bool = True) -> dict[str, Any]:
    sessions = {sid: (type(s).__name__, s.to_row()) for sid, s in e.state.sessions.items()}
    users = {
        uid: (sorted(u.roles), sorted(u.sessions), u.recent_changes)
        for uid, u in e.state.user_items()
    }
    state: dict[str, Any] = {"sessions": sessions, "users": users}
    if watermark:
        state["watermark"] = e.state.event_watermark
    return state


def test_occurred_at_helper_is_utc() -> None:
    """Guard for the factories themselves: times are offsets from a fixed UTC epoch."""
    assert T0 == at(0).timestamp()
