"""/healthz and /readyz verdicts, decided from what the loop reported and a fake clock."""

from __future__ import annotations

from sessionwarden.ops.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _progress(clock: FakeClock) -> Progress:
    return Progress(stall_s=5, max_lag=100, clock=clock)


def test_a_loop_that_keeps_stepping_is_healthy_and_one_that_stops_is_not() -> None:
    """A silent stall is the worst failure of an enforcer: it must turn /healthz red."""
    clock = FakeClock()
    progress = _progress(clock)
    progress.step()
    clock.t += 5
    assert (True, "ok") == (progress.health().ok, progress.health().reason)
    clock.t += 0.1
    assert (False, "loop stalled") == (progress.health().ok, progress.health().reason)
    progress.step()
    assert progress.health().ok


def test_a_loop_that_never_stepped_stalls_from_its_start() -> None:
    """A loop stuck before its first step (fencing, joining) is a stall too."""
    clock = FakeClock()
    progress = _progress(clock)
    clock.t += 6
    assert not progress.health().ok


def test_a_restore_is_no_excuse_for_a_loop_that_stops_stepping() -> None:
    """Restores run a slice per loop turn: while one is under way the loop still steps, and a
    loop that stops stepping is stalled whether or not a partition is restoring."""
    clock = FakeClock()
    progress = _progress(clock)
    progress.restore_begin([1])
    progress.step()
    clock.t += 5
    health = progress.health()
    assert (True, "ok", 1) == (health.ok, health.reason, health.detail["restoring"])
    clock.t += 0.1
    assert (False, "loop stalled") == (progress.health().ok, progress.health().reason)


def test_a_recovery_that_keeps_retrying_turns_unhealthy_and_not_ready() -> None:
    """Rebuilding the clients gives every partition up: not ready at once; unhealthy once the
    rebuild has been retrying past the stall budget; both recover with the next step."""
    clock = FakeClock()
    progress = _progress(clock)
    progress.restore_end([0])
    progress.lag({0: 0})
    progress.step()
    assert progress.readiness().ok
    progress.recovering()
    assert (False, "recovering") == (progress.readiness().ok, progress.readiness().reason)
    clock.t += 4
    progress.recovering()  # another attempt: the recovery's start is kept
    clock.t += 1.1
    health = progress.health()
    assert (False, "recovery retrying", 5.1) == (
        health.ok,
        health.reason,
        health.detail["recovering_s"],
    )
    progress.step()
    assert progress.health().ok
    assert "not assigned yet" == progress.readiness().reason
    progress.restore_begin([0])
    progress.restore_end([0])
    progress.lag({0: 0})
    assert progress.readiness().ok


def test_ready_only_once_assigned_restored_and_caught_up() -> None:
    """Not ready before the first assignment, while any partition restores, before the lag of
    a restored partition is measured, or while far behind."""
    clock = FakeClock()
    progress = _progress(clock)
    assert "not assigned yet" == progress.readiness().reason
    progress.restore_begin([0, 1])
    assert ("restoring", {"partitions": [0, 1]}) == (
        progress.readiness().reason,
        progress.readiness().detail,
    )
    progress.restore_end([0])
    assert {"partitions": [1]} == progress.readiness().detail
    progress.restore_end([1])
    assert ("catching up", {"unmeasured": [0, 1]}) == (
        progress.readiness().reason,
        progress.readiness().detail,
    )
    progress.lag({0: 100, 1: 101})
    verdict = progress.readiness()
    assert (False, "catching up", {"lag_records": {1: 101}}) == (
        verdict.ok,
        verdict.reason,
        verdict.detail,
    )
    progress.lag({0: 0, 1: 3})
    assert progress.readiness().ok


def test_a_partition_revoked_while_restoring_no_longer_holds_readiness() -> None:
    clock = FakeClock()
    progress = _progress(clock)
    progress.restore_begin([0, 1])
    progress.restore_end([0])
    progress.lag({0: 0})
    progress.revoked([1])
    assert progress.readiness().ok
    assert 0 == progress.restoring_count()
