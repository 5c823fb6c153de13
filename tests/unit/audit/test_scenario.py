"""Simulation plans: reproducible, and their ground truth follows the policy's rules."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

from sessionwarden.audit.scenario import build_plan
from sessionwarden.policy import load_policy

POLICY = load_policy(Path(__file__).parents[2] / "fixtures/policies/sim.toml")


def test_same_seed_gives_the_same_plan() -> None:
    """An operator re-running a seed must get the identical traffic and truth."""
    a = build_plan(POLICY, 30, 7, 1000.0, 10.0)
    b = build_plan(POLICY, 30, 7, 1000.0, 10.0)
    assert [(e.publish_at, e.doc, e.raw) for e in a.events] == [
        (e.publish_at, e.doc, e.raw) for e in b.events
    ]
    assert {k: vars(v) for k, v in a.truth.items()} == {k: vars(v) for k, v in b.truth.items()}


def test_every_kind_of_end_appears_in_a_large_plan() -> None:
    """The mix covers idle, absolute, logout, role removal, step-up and identity-signal ends."""
    plan = build_plan(POLICY, 200, 3, 1000.0, 30.0)
    reasons = Counter(t.reason for t in plan.truth.values())
    expected = {
        "idle_timeout",
        "absolute_timeout",
        "logout",
        "permissions_revoked",
        "step_up_required",
        "signal",
    }
    assert expected == set(reasons)
    assert plan.duplicates > 0 and plan.late > 0 and plan.poison > 0


def test_truth_of_an_idle_session_is_last_activity_plus_idle() -> None:
    """Checks the oracle on its simplest case against hand arithmetic."""
    plan = build_plan(POLICY, 200, 3, 1000.0, 30.0)
    sid, truth = next((s, t) for s, t in plan.truth.items() if t.kind == "idle_just_under")
    times = [
        datetime.fromisoformat(e.doc["occurred_at"]).timestamp()
        for e in plan.events
        if e.doc is not None and e.doc.get("session_id") == sid and e.doc["type"] == "activity"
    ]
    login = next(e.doc for e in plan.events if e.doc and e.doc.get("session_id") == sid)
    idle = POLICY.timeouts_for(login["user_type"], login["risk_profile"]).idle
    assert ("idle_timeout", round(max(times) + idle, 3)) == (truth.reason, round(truth.at, 3))


def test_activity_just_over_idle_is_expected_as_an_ended_session_use() -> None:
    """The 'just over' sessions end at their idle deadline and the late request is flagged."""
    plan = build_plan(POLICY, 200, 3, 1000.0, 30.0)
    over = {s for s, t in plan.truth.items() if t.kind == "idle_just_over"}
    assert over and over <= set(plan.ended_session_used)
    assert all(plan.truth[s].reason == "idle_timeout" for s in over)


def test_identity_signals_are_planned_with_their_truth() -> None:
    """session_revoked and user_revoked end their sessions as ``signal`` at the signal's time;
    a risk change past the tighter idle deadline ends the session at the change's time."""
    plan = build_plan(POLICY, 300, 3, 1000.0, 30.0)
    docs = {e.doc["event_id"]: e.doc for e in plan.events if e.doc is not None}
    signals = [d for d in docs.values() if d["type"] in ("session_revoked", "user_revoked")]
    assert signals and all(d["source"] == "ssf:sim" for d in signals)
    by_kind = Counter((t.kind, t.reason) for t in plan.truth.values())
    assert by_kind[("signal_session", "signal")] > 0
    assert by_kind[("signal_user", "signal")] >= 2
    risk_ends = {
        round(datetime.fromisoformat(d["occurred_at"]).timestamp(), 3)
        for d in docs.values()
        if d["type"] == "risk_change"
    }
    at_change = [
        t for t in plan.truth.values() if t.kind == "risk_tightened" and round(t.at, 3) in risk_ends
    ]
    assert at_change and {"idle_timeout"} == {t.reason for t in at_change}
