"""The dashboard's model, with plain timestamps: what the security team sees from which records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from sessionwarden.ops.logs import SessionHasher
from sessionwarden.web.dashboard.view import DashboardState

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


def test_a_risk_change_moves_a_live_session_to_its_new_profile_and_deadline() -> None:
    """session_risk_changed: counted under the new risk profile, gone at the tighter deadline;
    a session ended on an identity signal is counted by its reason."""
    state = DashboardState(show_session=hasher)
    state.apply_audit(started("a", "employee", "low", T0), T0)
    state.apply_audit(started("b", "employee", "low", T0), T0)
    changed = {
        "type": "session_risk_changed", "session_id": "a", "risk_profile": "high",
        "absolute_deadline": iso(T0 + 30),
    }  # fmt: skip
    assert state.apply_audit(changed, T0 + 1)
    assert [["employee", "high", 1], ["employee", "low", 1]] == sorted(
        state.snapshot(T0 + 20)["live"]["cells"]
    )
    assert [["employee", "low", 1]] == state.snapshot(T0 + 40)["live"]["cells"]
    state.apply_revocation(revoked("b", "signal", T0 + 41, T0 + 41), T0 + 41)
    snap = state.snapshot(T0 + 42)
    assert 0 == snap["live"]["total"]
    assert "signal" in snap["revocations"]["by_reason"]


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
    # sessionwarden.ops.stats.percentiles, interpolated between the two:
    # 80 + 0.5 * 170, 80 + 0.99 * 170
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
    alert = alert_doc("u", T0, evidence__session_ids=["raw-session"])
    state.apply_alert(alert, T0)

    snap = state.snapshot(T0)

    assert hasher("raw-session") == snap["recent"][0]["session"]
    assert [hasher("raw-session")] == snap["alerts"][0]["evidence"]["sessions"]
    assert "raw-session" not in str(snap)


def test_hostile_records_change_nothing() -> None:
    """Records of the wrong shape are skipped, never raised on."""
    state = DashboardState(show_session=hasher)
    used = [
        state.apply_revocation({"type": "revocation", "session_id": 5}, T0),
        state.apply_revocation({"type": "revocation", "session_id": "x", "emitted_at": "no"}, T0),
        state.apply_revocation({**revoked("x", "logout", T0, T0), "reason": ["logout"]}, T0),
        state.apply_audit({"type": "session_started", "session_id": "x"}, T0),
        state.apply_audit({**started("x", "employee", "high", T0), "user_type": {}}, T0),
        state.apply_alert({"type": "alert", "evidence": "not a dict"}, T0),
    ]

    snap = state.snapshot(T0)

    assert [False] * 6 == used
    assert (0, 0, []) == (snap["live"]["total"], snap["latency"]["count"], snap["recent"])
    assert [] == snap["alerts"]


def test_every_audit_record_type_is_taken_even_those_without_a_session() -> None:
    """A role change names a user, not a session: counting it as skipped would log a warning
    for every grant and hide real skips in the count."""
    state = DashboardState(show_session=hasher)
    role_changed = {
        "type": "role_changed", "user_id": "u", "tenant": "acme", "occurred_at": iso(T0),
        "roles_granted": ["admin"], "roles_removed": [], "actor": "a",
    }  # fmt: skip
    session_less = [{**started("x", "employee", "high", T0), "session_id": None}]
    session_less += [{"type": "session_ended"}]

    assert [True, False, False] == [
        state.apply_audit(doc, T0) for doc in (role_changed, *session_less)
    ]


def test_the_feeds_are_newest_first_whatever_order_the_partitions_replay_in() -> None:
    """Records of several partitions arrive interleaved; the feed is ordered by their time."""
    state = DashboardState(show_session=hasher, feed_size=3)
    for sid, t in (("a", T0 + 5), ("b", T0 + 1), ("c", T0 + 9), ("d", T0 + 3), ("e", T0 + 7)):
        state.apply_revocation(revoked(sid, "logout", t, t), T0 + 10)

    recent = state.snapshot(T0 + 10)["recent"]

    assert [hasher(s) for s in ("c", "e", "a")] == [r["session"] for r in recent]


def alert_doc(user: str, emitted: float, **changes: Any) -> dict[str, Any]:
    """An alert as the detectors write it (JSON), with ``changes`` applied to it."""
    doc: dict[str, Any] = {
        "type": "alert", "schema_version": 1, "alert_id": str(uuid.uuid5(uuid.NAMESPACE_URL, user)),
        "kind": "privilege_escalation", "severity": "high", "user_id": user, "tenant": "acme",
        "first_seen": iso(emitted - 60), "last_seen": iso(emitted), "emitted_at": iso(emitted),
        "summary": f"{user} was granted admin", "suppressed": 0,
        "evidence": {"session_ids": ["s-1"], "roles": ["admin"], "counts": {"grants": 1}},
    }  # fmt: skip
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = doc
        for name in parents:
            target = target[name]
        target[leaf] = value
    return doc


@pytest.mark.parametrize(
    "change",
    [
        {"evidence__roles": "admin"},  # a string where a list belongs
        {"evidence__session_ids": 5},
        {"evidence__counts": {"grants": "many"}},
        {"severity": "<img src=x onerror=alert(1)>"},
        {"kind": 7},
        {"emitted_at": "yesterday"},
        {"unexpected": True},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_malformed_alert_is_refused_and_the_good_ones_still_shown(change: dict[str, Any]) -> None:
    """One bad record from a detector must not blank or corrupt the security team's view."""
    state = DashboardState(show_session=hasher)
    refused = state.apply_alert(alert_doc("mallory", T0, **change), T0)
    kept = state.apply_alert(alert_doc("alice", T0 + 1), T0 + 1)

    alerts = state.snapshot(T0 + 2)["alerts"]

    assert (False, True) == (refused, kept)
    assert ["alice"] == [a["user_id"] for a in alerts]
    assert {"sessions": [hasher("s-1")], "more_sessions": 0, "roles": ["admin"],
            "counts": {"grants": 1}} == alerts[0]["evidence"]  # fmt: skip


def test_an_alert_delivered_again_is_shown_once() -> None:
    """After a restart the detectors may deliver an alert again, same alert_id, later
    emitted_at; subscribers drop it by its id."""
    state = DashboardState(show_session=hasher)
    first = alert_doc("alice", T0)
    assert state.apply_alert(first, T0)
    assert state.apply_alert({**first, "emitted_at": iso(T0 + 30)}, T0 + 30)
    assert state.apply_alert(alert_doc("bob", T0 + 31), T0 + 31)

    alerts = state.snapshot(T0 + 32)["alerts"]

    assert [("bob", T0 + 31), ("alice", T0)] == [(a["user_id"], a["at"]) for a in alerts]


def test_alerts_dated_in_the_future_do_not_hide_later_alerts() -> None:
    """A record's own time is clamped to its arrival: year 9999 sorts as when it came."""
    state = DashboardState(show_session=hasher)
    far = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
    for i in range(state.feed_size):
        assert state.apply_alert(alert_doc(f"future-{i:02}", far), T0)
    state.apply_alert(alert_doc("later", T0 + 5), T0 + 5)

    alerts = state.snapshot(T0 + 6)["alerts"]

    assert "later" == alerts[0]["user_id"]
    assert {T0} == {a["at"] for a in alerts[1:]}  # shown at their arrival, not in 9999


def test_revocations_dated_in_the_future_do_not_hide_later_ones_or_stay_forever() -> None:
    """The same clamp for the recent revocations and the per-minute window."""
    state = DashboardState(show_session=hasher)
    far = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
    for i in range(state.feed_size):
        state.apply_revocation(revoked(f"f{i}", "logout", far, far), T0)
    state.apply_revocation(revoked("later", "logout", T0 + 5, T0 + 5), T0 + 5)

    snap = state.snapshot(T0 + 6)
    expired = state.snapshot(T0 + state.window_s + 10)["revocations"]["by_reason"]

    assert hasher("later") == snap["recent"][0]["session"]
    assert {} == expired


def test_a_tenant_revocation_is_taken_not_skipped_and_changes_no_session() -> None:
    """A mass revocation's tenant record is a record of the topic, not a hostile one: skipping
    it would log a warning per copy; its sessions are shown as their own revocations arrive."""
    state = DashboardState(show_session=hasher)
    state.apply_audit(started("s1", "employee", "high", T0), T0)
    tenant = {
        "type": "tenant_revocation", "tenant": "acme", "reason": "operator",
        "started_by": iso(T0 + 1), "effective_at": iso(T0 + 1), "emitted_at": iso(T0 + 1),
        "partition": 0, "complete": False,
    }  # fmt: skip

    taken = state.apply_revocation(tenant, T0 + 1)

    assert (True, 1) == (taken, state.snapshot(T0 + 1)["live"]["total"])
