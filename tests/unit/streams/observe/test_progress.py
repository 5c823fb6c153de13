"""/healthz and /readyz verdicts, decided from what the loop reported and a fake clock."""

from __future__ import annotations

from streams.observe.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _progress(clock: FakeClock) -> Progress:
    return Progress(stall_s=5, restore_budget_s=60, max_lag=100, clock=clock)


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


def test_a_restore_gets_its_own_budget() -> None:
    """Restoring a large changelog blocks the loop for longer than a step may take."""
    clock = FakeClock()
    progress = _progress(clock)
    progress.restore_begin()
    clock.t += 60
    assert (True, "restoring") == (progress.health().ok, progress.health().reason)
    clock.t += 1
    assert (False, "restore stalled") == (progress.health().ok, progress.health().reason)
    progress.restore_end()
    assert progress.health().ok


def test_ready_only_once_assigned_restored_and_caught_up() -> None:
    """Not ready before the first assignment, while restoring, or while far behind."""
    clock = FakeClock()
    progress = _progress(clock)
    assert "not assigned yet" == progress.readiness().reason
    progress.restore_begin()
    assert "restoring" == progress.readiness().reason
    progress.restore_end()
    assert progress.readiness().ok
    progress.lag({0: 100, 1: 101})
    verdict = progress.readiness()
    assert (False, "catching up", {"lag_records": {1: 101}}) == (
        verdict.ok,
        verdict.reason,
        verdict.detail,
    )
    progress.lag({0: 0, 1: 3})
    assert progress.readiness().ok
