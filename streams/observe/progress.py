"""Health and readiness of a processing loop: pure, with the clock passed in.

The loop reports what it does (a step began, a restore began or ended, how far behind each
partition is); the HTTP thread asks :meth:`Progress.health` and :meth:`Progress.readiness`
from another thread. Every field is a single reference assignment, so the answers need no
lock: at worst they are one step old.

*Healthy* means the loop is making progress: it began a step within ``stall_s`` (a restore,
which blocks the loop, gets ``restore_budget_s``). *Ready* means it has been assigned its
partitions, none is restoring, and none is more than ``max_lag`` records behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)


class Progress:
    """What the loop last did, and what that means for /healthz and /readyz."""

    def __init__(
        self,
        stall_s: float,
        restore_budget_s: float,
        max_lag: int,
        clock: Clock = time.monotonic,
    ) -> None:
        self.stall_s = stall_s
        self.restore_budget_s = restore_budget_s
        self.max_lag = max_lag
        self._clock = clock
        self._started_at = clock()
        self._last_step: float | None = None
        self._restoring_since: float | None = None
        self._assigned = False
        self._lag: dict[int, int] = {}

    # -- reported by the loop -------------------------------------------------------------

    def step(self) -> float:
        """A step of the loop began; returns the time, for its duration."""
        now = self._clock()
        self._last_step = now
        return now

    def restore_begin(self) -> None:
        self._restoring_since = self._clock()

    def restore_end(self) -> None:
        self._restoring_since = None
        self._assigned = True
        self._last_step = self._clock()

    def lag(self, by_partition: Mapping[int, int]) -> None:
        """Records behind on every owned partition (replaces the previous report)."""
        self._lag = dict(by_partition)

    # -- asked by the HTTP thread ---------------------------------------------------------

    def health(self) -> Verdict:
        now = self._clock()
        restoring = self._restoring_since
        if restoring is not None:
            took = now - restoring
            if took > self.restore_budget_s:
                return Verdict(False, "restore stalled", {"restoring_s": round(took, 3)})
            return Verdict(True, "restoring", {"restoring_s": round(took, 3)})
        last = self._last_step if self._last_step is not None else self._started_at
        idle = now - last
        if idle > self.stall_s:
            return Verdict(False, "loop stalled", {"since_last_step_s": round(idle, 3)})
        return Verdict(True, "ok", {"since_last_step_s": round(idle, 3)})

    def readiness(self) -> Verdict:
        if self._restoring_since is not None:
            return Verdict(False, "restoring")
        if not self._assigned:
            return Verdict(False, "not assigned yet")
        behind = {p: n for p, n in self._lag.items() if n > self.max_lag}
        if behind:
            return Verdict(False, "catching up", {"lag_records": behind})
        return Verdict(True, "ok")
