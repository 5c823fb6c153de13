"""The ground-truth oracle on the time model: skew, reordering, delay, duplicates (pure)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sessionwarden.audit.oracle import NEVER_LIVE, judge
from sessionwarden.policy import load_policy
from sessionwarden.testing.events import iso

POLICY = load_policy(Path(__file__).parents[2] / "fixtures/policies/sim.toml")
IDLE = 2.0  # sim.toml defaults (customer, medium)
ABSOLUTE = 6.0


def ev(kind: str, t: float, sid: str = "s", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": kind,
        "event_id": str(uuid.uuid4()),
        "occurred_at": iso(t),
        "user_id": "u",
        "tenant": "sim",
    }
    if kind not in ("role_change", "user_revoked", "risk_change"):
        doc["session_id"] = sid
    if kind == "login":
        doc.update(user_type="customer", risk_profile="medium", auth_time=iso(t))
        doc.setdefault("roles", ["viewer"])
    if kind == "activity":
        doc["action"] = "docs.read"
    doc.update(fields)
    return doc


def test_clock_ahead_does_not_extend_idle_beyond_the_append_time() -> None:
    """An activity stamped 3 s ahead counts from when it was appended, not from its stamp."""
    events = [(100.0, ev("login", 100.0)), (101.0, ev("activity", 104.0))]
    assert {"s": ("idle_timeout", 101.0 + IDLE)} == judge(POLICY, events, 0.0).ends


def test_clock_ahead_on_every_event_changes_no_outcome() -> None:
    """A producer running 3 s fast gives the same ends as a true clock."""
    true = [(100.0, ev("login", 100.0)), (101.0, ev("activity", 101.0))]
    fast = [(100.0, ev("login", 103.0)), (101.0, ev("activity", 104.0))]
    assert judge(POLICY, true, 0.0).ends == judge(POLICY, fast, 0.0).ends


def test_clock_behind_shortens_idle_by_the_skew() -> None:
    """Stamps 0.5 s behind: the deadline is the stamp plus idle, 0.5 s before the true one."""
    events = [(100.0, ev("login", 99.5)), (101.0, ev("activity", 100.5))]
    assert {"s": ("idle_timeout", 100.5 + IDLE)} == judge(POLICY, events, 0.0).ends


def test_delay_inside_the_budget_keeps_the_session_alive() -> None:
    """Made 0.2 s before the deadline, appended 0.6 s later, budget 1 s: it counts."""
    events = [(100.0, ev("login", 100.0)), (102.4, ev("activity", 101.8))]
    verdict = judge(POLICY, events, 1.0)
    assert {"s": ("idle_timeout", 101.8 + IDLE)} == verdict.ends
    assert [] == verdict.after_revocation


def test_delay_beyond_the_budget_is_read_after_the_revocation() -> None:
    """Made before the deadline but appended past deadline + budget: the session ended at its
    deadline and the activity is expected as an activity-after-revocation record."""
    events = [(100.0, ev("login", 100.0)), (105.0, ev("activity", 101.8))]
    verdict = judge(POLICY, events, 1.0)
    assert {"s": ("idle_timeout", 100.0 + IDLE)} == verdict.ends
    assert ["s"] == verdict.after_revocation
    assert [] == verdict.ended_session_used


def test_activity_read_near_the_firing_time_is_ambiguous() -> None:
    """Appended 0.5 s after deadline + budget: the enforcer may or may not have fired yet."""
    events = [(100.0, ev("login", 100.0)), (103.5, ev("activity", 101.8))]
    assert judge(POLICY, events, 1.0).ambiguous


def test_activity_made_after_the_deadline_is_an_ended_session_use() -> None:
    events = [(100.0, ev("login", 100.0)), (102.5, ev("activity", 102.5))]
    verdict = judge(POLICY, events, 0.0)
    assert {"s": ("idle_timeout", 102.0)} == verdict.ends
    assert ["s"] == verdict.ended_session_used


def test_logout_appended_before_its_login_leaves_a_session_that_never_lived() -> None:
    events = [(101.0, ev("logout", 101.0)), (101.3, ev("login", 100.0))]
    assert {"s": (NEVER_LIVE, 101.0)} == judge(POLICY, events, 0.0).ends


def test_removal_read_before_an_older_login_with_the_role_revokes_it() -> None:
    """The login (made at 100.2) carries a role removed at 100.8, read before the login."""
    events = [
        (100.8, ev("role_change", 100.8, roles_granted=[], roles_removed=["editor"])),
        (101.1, ev("login", 100.2, roles=["editor"])),
    ]
    assert {"s": ("permissions_revoked", 100.8)} == judge(POLICY, events, 0.0).ends


def test_older_grant_read_after_a_newer_removal_grants_nothing() -> None:
    """Grant (made 100.4) read after the removal (100.6): a later removal finds no role."""
    events = [
        (100.0, ev("login", 100.0)),
        (100.6, ev("role_change", 100.6, roles_granted=[], roles_removed=["editor"])),
        (100.9, ev("role_change", 100.4, roles_granted=["editor"], roles_removed=[])),
        (101.2, ev("role_change", 101.2, roles_granted=[], roles_removed=["editor"])),
    ]
    assert {"s": ("idle_timeout", 100.0 + IDLE)} == judge(POLICY, events, 0.0).ends


def test_newer_grant_then_removal_revokes() -> None:
    """The counter-check: a grant newer than the removal does apply."""
    events = [
        (100.0, ev("login", 100.0)),
        (100.6, ev("role_change", 100.6, roles_granted=[], roles_removed=["editor"])),
        (100.9, ev("role_change", 100.9, roles_granted=["editor"], roles_removed=[])),
        (101.2, ev("role_change", 101.2, roles_granted=[], roles_removed=["editor"])),
    ]
    assert {"s": ("permissions_revoked", 101.2)} == judge(POLICY, events, 0.0).ends


def test_a_repeated_event_id_changes_nothing() -> None:
    """The same logout delivered twice, and an activity repeated after the session ended."""
    act = ev("activity", 101.0)
    out = ev("logout", 101.5)
    events = [(100.0, ev("login", 100.0)), (101.0, act), (101.5, out), (101.6, out), (103.0, act)]
    verdict = judge(POLICY, events, 0.0)
    assert {"s": ("logout", 101.5)} == verdict.ends
    assert ([], []) == (verdict.ended_session_used, verdict.after_revocation)


def test_absolute_deadline_caps_activity() -> None:
    events = [(100.0, ev("login", 100.0))]
    events += [(100.0 + k, ev("activity", 100.0 + k)) for k in (1.5, 3.0, 4.5)]
    assert {"s": ("absolute_timeout", 100.0 + ABSOLUTE)} == judge(POLICY, events, 0.0).ends


def test_activity_made_at_the_very_deadline_ends_the_session_quietly() -> None:
    """Read before the deadline fires (budget 1 s): no ended-session use, no late activity;
    with no budget it could be read either side of the firing: ambiguous."""
    events = [(100.0, ev("login", 100.0)), (102.0, ev("activity", 102.0))]
    assert judge(POLICY, events, 0.0).ambiguous
    verdict = judge(POLICY, events, 1.0)
    assert {"s": ("idle_timeout", 102.0)} == verdict.ends
    assert ([], []) == (verdict.ended_session_used, verdict.after_revocation)


def test_clock_ahead_event_near_a_deadline_is_ambiguous() -> None:
    """Its event time is its append time, which the plan knows only roughly."""
    events = [(100.0, ev("login", 100.0)), (101.8, ev("activity", 104.0))]
    assert "" == judge(POLICY, events, 1.0).ambiguous
    assert judge(POLICY, events, 1.0, window=0.5).ambiguous


def test_a_login_beyond_the_session_cap_ends_the_oldest_live_session() -> None:
    """The enforcer holds a user to max_sessions_per_user; verify must expect those ends
    (session_limit at the newer login's time), not count them as spurious."""
    cap = POLICY.max_sessions_per_user
    logins = [(100.0 + i * 0.01, ev("login", 100.0 + i * 0.01, f"s{i}")) for i in range(cap + 1)]
    ends = judge(POLICY, logins, 0.0).ends
    newest = 100.0 + cap * 0.01

    assert ("session_limit", newest) == ends["s0"]
    assert {"idle_timeout"} == {reason for sid, (reason, _) in ends.items() if sid != "s0"}


def test_signals_end_the_named_session_or_the_users_sessions_of_that_time() -> None:
    """session_revoked ends one session; user_revoked every one that began by its time."""
    events = [
        (100.0, ev("login", 100.0, "a")),
        (100.0, ev("login", 100.0, "b")),
        (101.0, ev("session_revoked", 101.0, "a", signal="session_revoked")),
        (101.2, ev("login", 101.2, "c")),
        (101.5, ev("user_revoked", 101.1, signal="account_disabled")),  # read after c's login
    ]
    ends = judge(POLICY, events, 0.0).ends
    assert {
        "a": ("signal", 101.0),
        "b": ("signal", 101.1),
        "c": ("idle_timeout", 101.2 + IDLE),
    } == ends


def test_a_risk_change_tightens_and_ends_a_session_past_the_tighter_deadline() -> None:
    """high: idle 1.5 s. One session idle for 1.6 s ends at the change, with idle_timeout; one
    active just before moves to the shorter idle; a session named elsewhere is not touched."""
    events = [
        (100.0, ev("login", 100.0, "a")),
        (100.0, ev("login", 100.0, "b")),
        (100.0, ev("login", 100.0, "c")),
        (101.0, ev("activity", 101.0, "b")),
        (101.6, ev("risk_change", 101.6, "x", risk_profile="high", session_id="a")),
        (101.6, ev("risk_change", 101.6, "x", risk_profile="high", session_id="b")),
    ]
    ends = judge(POLICY, events, 0.0).ends
    assert {
        "a": ("idle_timeout", 101.6),
        "b": ("idle_timeout", 101.0 + 1.5),
        "c": ("idle_timeout", 100.0 + IDLE),
    } == ends


def test_a_login_older_than_a_user_revocation_read_after_it_ends_at_the_revocation() -> None:
    """As the enforcer: a late login that began before user_revoked never lives on."""
    events = [
        (100.6, ev("user_revoked", 100.5, signal="credential_compromise")),
        (101.0, ev("login", 100.2, "late")),
        (101.0, ev("login", 100.8, "new")),
    ]
    ends = judge(POLICY, events, 0.0).ends
    assert {"late": ("signal", 100.5), "new": ("idle_timeout", 100.8 + IDLE)} == ends
