"""Classification of revocations against ground truth (pure)."""

from __future__ import annotations

import uuid
from typing import Any

from sessionwarden.audit.verify import audit, render_text

TRUTH: dict[str, Any] = {
    "run_id": "r1",
    "tenant": "sim",
    "sessions": {
        "r1-a": {"user_id": "u", "kind": "idle", "reason": "idle_timeout", "at": 100.0},
        "r1-b": {"user_id": "u", "kind": "logout", "reason": "logout", "at": 50.0},
    },
    "ended_session_used": ["r1-a"],
}


def rev(sid: str, reason: str, at: float, emitted: float, tenant: str = "sim") -> dict[str, Any]:
    return {
        "type": "revocation",
        "revocation_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}{sid}{reason}{at}")),
        "tenant": tenant,
        "session_id": sid,
        "reason": reason,
        "effective_at": f"1970-01-01T00:{int(at) // 60:02d}:{at % 60:06.3f}Z",
        "emitted_at": f"1970-01-01T00:{int(emitted) // 60:02d}:{emitted % 60:06.3f}Z",
    }


USED = [{"tenant": "sim", "session_id": "r1-a"}]


def test_exact_revocations_are_correct() -> None:
    """On-time revocations for the right cause pass, with their latency measured."""
    report = audit(
        TRUTH,
        [rev("r1-a", "idle_timeout", 100, 100.05), rev("r1-b", "logout", 50, 50.02)],
        USED,
        2.0,
    )
    assert report.ok
    assert {"correct": 2} == {c: report.total(c) for c in ("correct",)}
    assert [50, 20] == [round(x * 1000) for x in report.latencies]
    assert "PASS" in render_text(report)


def test_missing_revocation_is_missed_and_fails() -> None:
    """A session that was never revoked outlived its deadline: the audit fails."""
    report = audit(TRUTH, [rev("r1-b", "logout", 50, 50.02)], USED, 2.0)
    assert (False, 1) == (report.ok, report.rows["idle_timeout"]["missed"])


def test_revocation_as_of_a_later_deadline_is_missed() -> None:
    """An enforcer with a longer idle timeout revokes 'on time' for itself, but too late."""
    report = audit(
        TRUTH,
        [rev("r1-a", "idle_timeout", 130, 130.01), rev("r1-b", "logout", 50, 50.02)],
        USED,
        2.0,
    )
    assert (False, 1) == (report.ok, report.rows["idle_timeout"]["missed"])


def test_early_revocation_fails() -> None:
    """Cutting a session before its deadline is as wrong as letting it outlive it."""
    report = audit(
        TRUTH, [rev("r1-a", "idle_timeout", 90, 90.01), rev("r1-b", "logout", 50, 50.02)], USED, 2.0
    )
    assert (False, 1) == (report.ok, report.rows["idle_timeout"]["early"])


def test_wrong_cause_duplicate_and_uncaused_revocations_are_spurious() -> None:
    """Revocations the truth does not explain are spurious, and fail the audit."""
    recs = [
        rev("r1-a", "absolute_timeout", 100, 100.01),
        rev("r1-b", "logout", 50, 50.02),
        rev("r1-b", "logout", 51, 51.02),
        rev("r1-zzz", "idle_timeout", 10, 10.0),
    ]
    report = audit(TRUTH, recs, USED, 2.0)
    assert (False, 3) == (report.ok, report.total("spurious"))


def test_slow_but_right_revocation_is_late_and_does_not_fail() -> None:
    """Beyond the tolerance is reported as late; the deadline itself was honoured."""
    report = audit(
        TRUTH,
        [rev("r1-a", "idle_timeout", 100, 103.5), rev("r1-b", "logout", 50, 50.02)],
        USED,
        2.0,
    )
    assert (True, 1) == (report.ok, report.rows["idle_timeout"]["late"])


def test_ended_session_use_mismatch_is_reported() -> None:
    """The audit stream must carry every use of an ended session the truth expects."""
    report = audit(
        TRUTH, [rev("r1-a", "idle_timeout", 100, 100.05), rev("r1-b", "logout", 50, 50.02)], [], 2.0
    )
    assert (1, 0) == (report.ended_session_used_expected, report.ended_session_used_seen)
    assert any("ended-session use" in p for p in report.problems)


def test_another_tenants_revocation_of_the_same_session_id_is_not_this_ones() -> None:
    """Sessions are (tenant, session_id): a revocation in another tenant proves nothing here."""
    report = audit(
        TRUTH,
        [rev("r1-a", "idle_timeout", 100, 100.05, tenant="other"), rev("r1-b", "logout", 50, 50)],
        [{"tenant": "other", "session_id": "r1-a"}],
        2.0,
    )
    assert (1, 1) == (report.rows["idle_timeout"]["missed"], report.total("spurious"))
    assert (1, 0) == (report.ended_session_used_expected, report.ended_session_used_seen)


def test_a_truth_file_without_tenants_matches_on_session_id() -> None:
    """Ground truth written before tenants were recorded still verifies."""
    truth = {k: v for k, v in TRUTH.items() if k != "tenant"}
    report = audit(
        truth,
        [rev("r1-a", "idle_timeout", 100, 100.05), rev("r1-b", "logout", 50, 50.02)],
        USED,
        2.0,
    )
    assert report.ok


def test_a_signal_revocation_is_judged_like_a_logout() -> None:
    """Reason ``signal`` at the signal's time is correct; the same session revoked for another
    reason is spurious."""
    truth = {
        **TRUTH,
        "sessions": {"r1-c": {"user_id": "u", "kind": "signal", "reason": "signal", "at": 40.0}},
        "ended_session_used": [],
    }
    report = audit(truth, [rev("r1-c", "signal", 40, 40.03)], [], 2.0)
    assert (True, 1) == (report.ok, report.rows["signal"]["correct"])
    wrong = audit(truth, [rev("r1-c", "logout", 40, 40.03)], [], 2.0)
    assert (False, 1) == (wrong.ok, wrong.rows["signal"]["spurious"])
