"""Fault modes of simulate: seeded, each present, each reflected in the ground truth (pure)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sessionwarden.audit.faults import FAULTS, REORDER_KINDS, coverage_names, parse_faults
from sessionwarden.audit.oracle import NEVER_LIVE
from sessionwarden.audit.scenario import APPEND_SLACK_S, FORWARD_SLACK_S, Plan, build_plan
from sessionwarden.audit.verify import audit
from sessionwarden.errors import ConfigError
from sessionwarden.policy import load_policy

POLICY = load_policy(Path(__file__).parents[2] / "fixtures/policies/sim.toml")
ALL = frozenset(FAULTS)


def _plan(budget: float = 1.0, seed: int = 5) -> Plan:
    return build_plan(POLICY, 300, seed, 1000.0, 40.0, ALL, budget)


def _ts(doc: dict[str, Any]) -> float:
    return datetime.fromisoformat(doc["occurred_at"]).timestamp()


def test_parse_faults() -> None:
    assert ALL == parse_faults("all")
    assert frozenset({"skew", "delay"}) == parse_faults(" skew, delay ")
    assert frozenset() == parse_faults("")
    with pytest.raises(ConfigError, match="teleport"):
        parse_faults("skew,teleport")


def test_fault_plan_is_reproducible_per_seed() -> None:
    a, b = _plan(), _plan()
    assert [(e.publish_at, e.doc, e.foreign) for e in a.events] == [
        (e.publish_at, e.doc, e.foreign) for e in b.events
    ]
    assert {k: vars(v) for k, v in a.truth.items()} == {k: vars(v) for k, v in b.truth.items()}
    assert [e.doc for e in _plan(seed=6).events] != [e.doc for e in a.events]


def test_every_fault_mode_touches_users_of_a_300_user_plan() -> None:
    faults = _plan().faults
    for name in ("skew_ahead", "skew_behind", "delay", "duplicate", "partitioner"):
        assert faults[name] >= 5, name
    for kind in REORDER_KINDS:
        assert faults[f"reorder:{kind}"] >= 3, kind
    assert "revocation_before_login" in REORDER_KINDS


@pytest.mark.parametrize("start", [1000.0, 1000.0004, 1764620000.1234, 1764620000.9876])
def test_a_small_plan_exercises_every_requested_fault(start: float) -> None:
    """A short run must still cover each mode (both skew directions, every reorder case)."""
    plan = build_plan(POLICY, 20, 9, start, 40.0, ALL, 1.0)
    assert set(coverage_names(ALL)) <= set(plan.faults), plan.faults


def test_skew_stays_inside_the_tolerance_in_both_directions() -> None:
    offsets = [e.doc and _ts(e.doc) - e.publish_at for e in _plan().events if e.doc]
    ahead = [o for o in offsets if o is not None and o > 0.01]
    behind = [o for o in offsets if o is not None and o < -0.01 and o > -1.0]
    assert ahead and max(ahead) < POLICY.clock_skew_tolerance
    assert behind


def test_clock_ahead_sessions_have_a_window_reaching_the_append_time() -> None:
    """Their deadlines hang on when the broker appends: the truth gives the latest too."""
    windows = [t for t in _plan().truth.values() if t.at_max > t.at]
    assert windows
    assert all(t.at_max - t.at <= APPEND_SLACK_S + FORWARD_SLACK_S + 1e-6 for t in windows)
    assert all(t.at_max - t.at >= APPEND_SLACK_S - 1e-6 for t in windows)


def test_delays_inside_and_beyond_the_budget_are_both_planned() -> None:
    plan = _plan(budget=1.0)
    held = [e.publish_at - _ts(e.doc) for e in plan.events if e.doc and e.doc["type"] == "activity"]
    assert any(0.05 < h < 1.0 for h in held)
    assert any(h > 1.0 + 1.5 for h in held)
    assert plan.activity_after_revocation


def test_with_no_budget_every_delay_is_beyond_it() -> None:
    plan = _plan(budget=0.0)
    assert plan.activity_after_revocation
    assert 0.0 == plan.budget


def test_duplicates_repeat_every_event_type() -> None:
    plan = _plan()
    counts = Counter(e.doc["event_id"] for e in plan.events if e.doc)
    repeated = {e.doc["type"] for e in plan.events if e.doc and counts[e.doc["event_id"]] > 1}
    assert {"login", "activity", "logout", "role_change"} <= repeated
    assert plan.duplicates == sum(n - 1 for n in counts.values())


def test_foreign_partitioner_marks_activities_only() -> None:
    foreign = [e for e in _plan().events if e.foreign]
    assert foreign
    assert {"activity"} == {e.doc["type"] for e in foreign if e.doc}


def test_reordered_users_are_published_out_of_event_order() -> None:
    plan = _plan()
    never = [s for s, t in plan.truth.items() if t.reason == NEVER_LIVE]
    assert never
    by_session: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for e in plan.events:
        if e.doc and e.doc.get("session_id") in never:
            by_session[e.doc["session_id"]].append((e.publish_at, e.doc["type"]))
    for rows in by_session.values():
        assert "logout" == sorted(rows)[0][1]  # appended before its login
    late_logins = [t for t in plan.truth.values() if t.kind == "removal_before_login"]
    assert any(t.reason == "permissions_revoked" for t in late_logins)
    stale = [t for t in plan.truth.values() if t.kind == "stale_grant"]
    assert stale and all(t.reason != "permissions_revoked" for t in stale)


def test_a_perfect_enforcer_verifies_the_fault_plan() -> None:
    """Revocations exactly as the truth says, the audit records it expects: verify passes;
    a revocation of a never-live session is spurious."""
    plan = _plan()
    revs = [
        {
            "type": "revocation",
            "revocation_id": sid,
            "session_id": sid,
            "reason": t.reason,
            "effective_at": datetime.fromtimestamp(t.at).astimezone().isoformat(),
            "emitted_at": datetime.fromtimestamp(t.at + 0.1).astimezone().isoformat(),
        }
        for sid, t in plan.truth.items()
        if t.reason != NEVER_LIVE
    ]
    used = [{"type": "ended_session_used", "session_id": s} for s in plan.ended_session_used]
    used += [
        {"type": "activity_after_revocation", "session_id": s}
        for s in plan.activity_after_revocation
    ]
    truth = {
        "run_id": plan.run_id,
        "sessions": {
            s: {"reason": t.reason, "at": t.at, "at_max": t.at_max} for s, t in plan.truth.items()
        },
        "ended_session_used": plan.ended_session_used,
        "activity_after_revocation": plan.activity_after_revocation,
    }
    report = audit(truth, revs, used, 2.0)
    assert report.ok and not report.problems, report.problems[:5]
    never = next(s for s, t in plan.truth.items() if t.reason == NEVER_LIVE)
    revs.append({**revs[0], "session_id": never, "revocation_id": never, "reason": "logout"})
    assert 1 == audit(truth, revs, used, 2.0).total("spurious")
    missing = audit(truth, revs[:-1], used[:-1], 2.0)
    assert any("activity after revocation" in p for p in missing.problems)


def test_a_late_login_older_than_a_user_revocation_is_expected_to_end_at_it() -> None:
    """revocation_before_login: both sessions end as ``signal`` at the revocation's time."""
    plan = _plan()
    late = [t for t in plan.truth.values() if t.kind == "revocation_before_login"]
    assert late and {"signal"} == {t.reason for t in late}
    for t in late:
        first = plan.truth[t.session_id.removesuffix("b")]
        assert ("signal", first.at) == (first.reason, t.at)
