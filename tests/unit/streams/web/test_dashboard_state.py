"""The dashboard's model, with plain timestamps: what the security team sees from which records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.logsetup import SessionHasher
from streams.web.dashboard.state import DashboardState

T0 = 1_800_000_000.0
hasher = SessionHasher("salt")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def started(sid: str, user_type: str, risk: str, t: float, absolute_s: float = 3600) -> Any:
    return {
        "type": "session_started", "session_id": sid, "user_type": user_type,
        "risk_profile": risk, "absolute_deadline": iso(t + absolute_s),
    }  # fmt: skip


def revoked(sid: str, reason: str, effective: float, emitted: float) -> Any:
    return {
        "type": "revocation", "session_id": sid, "reason": reason, "user_id": "u",
        "tenant": "acme", "effective_at": iso(effective), "emitted_at": iso(emitted),
    }  # fmt: skip


def test_live_sessions_are_counted_by_user_type_and_risk_until_they_end() -> None:
    """Starts minus ends and revocations, and nothing past its absolute deadline."""
    state = DashboardState(show_session=hasher)
    state.apply_audit(started("a", "employee", "high", T0), T0)
    state.apply_audit(started("b", "employee", "high", T0), T0)
    state.apply_audit(started("c", "customer", "low", T0, absolute_s=10), T0)
    state.apply_audit(started("d", "customer", "low", T0), T0)
    state.apply_audit({"type": "session_ended", "session_id": "d"}, T0 + 1)
    state.apply_revocation(revoked("b", "logout", T0 + 2, T0 + 2), T0 + 2)

    live = state.snapshot(T0 + 20)["live"]

    assert 1 == live["total"]
    assert [["employee", "high", 1]] == live["cells"]


def test_deadline_latency_counts_only_live_deadline_revocations() -> None:
    """Deadline -> committed; a logout has no deadline, a replayed record is no latency."""
    state = DashboardState(show_session=hasher)
    state.apply_revocation(revoked("a", "idle_timeout", T0, T0 + 0.04), T0 + 0.08)
    state.apply_revocation(revoked("b", "absolute_timeout", T0, T0 + 0.2), T0 + 0.25)
    state.apply_revocation(revoked("c", "logout", T0, T0), T0 + 0.5)
    state.apply_revocation(revoked("d", "idle_timeout", T0 - 3600, T0 - 3600), T0)  # replayed

    latency = state.snapshot(T0 + 1)["latency"]

    assert 2 == latency["count"]
    assert [0, 0, 1, 0, 1, 0, 0, 0, 0, 0] == latency["bins"]  # 80 ms in <=100, 250 ms in <=300
    # streams.stats.percentiles, interpolated between the two: 80 + 0.5 * 170, 80 + 0.99 * 170
    assert (165.0, 248.3) == (round(latency["p50_ms"], 1), round(latency["p99_ms"], 1))


def test_revocations_per_reason_fall_into_minute_buckets_of_the_window() -> None:
    """Newest bucket last; older than the window is forgotten."""
    state = DashboardState(show_session=hasher, window_s=180, bucket_s=60)
    now = T0 + 1000
    for sid, age in (("a", 10), ("b", 70), ("c", 75), ("d", 500)):
        state.apply_revocation(revoked(sid, "idle_timeout", now - age, now - age), now)
    state.apply_revocation(revoked("e", "logout", now - 5, now - 5), now)

    per = state.snapshot(now)["revocations"]["by_reason"]

    assert {"idle_timeout": [0, 2, 1], "logout": [0, 0, 1]} == per


def test_session_ids_are_shown_as_the_salted_log_hash() -> None:
    """The dashboard never shows a raw session id unless the operator asks."""
    state = DashboardState(show_session=hasher)
    state.apply_revocation(revoked("raw-session", "idle_timeout", T0, T0), T0)
    alert = {
        "type": "alert", "kind": "ended_session_used", "severity": "critical", "user_id": "u",
        "tenant": "acme", "summary": "s", "emitted_at": iso(T0),
        "evidence": {"session_ids": ["raw-session"], "roles": [], "counts": {"uses": 3}},
    }  # fmt: skip
    state.apply_alert(alert, T0)

    snap = state.snapshot(T0)

    assert hasher("raw-session") == snap["recent"][0]["session"]
    assert [hasher("raw-session")] == snap["alerts"][0]["evidence"]["sessions"]
    assert "raw-session" not in str(snap)


def test_hostile_records_change_nothing() -> None:
    """Records of the wrong shape are skipped, never raised on."""
    state = DashboardState(show_session=hasher)
    state.apply_revocation({"type": "revocation", "session_id": 5}, T0)
    state.apply_revocation({"type": "revocation", "session_id": "x", "emitted_at": "nope"}, T0)
    state.apply_audit({"type": "session_started", "session_id": "x"}, T0)
    state.apply_alert({"type": "alert", "evidence": "not a dict"}, T0)

    snap = state.snapshot(T0)

    assert (0, 0, []) == (snap["live"]["total"], snap["latency"]["count"], snap["recent"])
    assert 1 == len(snap["alerts"])  # the alert is shown, its evidence empty
    assert [] == snap["alerts"][0]["evidence"]["sessions"]


def test_the_feeds_are_newest_first_whatever_order_the_partitions_replay_in() -> None:
    """Records of several partitions arrive interleaved; the feed is ordered by their time."""
    state = DashboardState(show_session=hasher, feed_size=3)
    for sid, t in (("a", T0 + 5), ("b", T0 + 1), ("c", T0 + 9), ("d", T0 + 3), ("e", T0 + 7)):
        state.apply_revocation(revoked(sid, "logout", t, t), T0 + 10)

    recent = state.snapshot(T0 + 10)["recent"]

    assert [hasher(s) for s in ("c", "e", "a")] == [r["session"] for r in recent]
