"""Health and readiness of a processing loop: pure, with the clock passed in.

The loop reports what it does (a step began, partitions began or finished restoring, were
revoked, how far behind each partition is, a recovery began); the HTTP thread asks
:meth:`Progress.health` and :meth:`Progress.readiness` from another thread. Every field is
replaced by a single reference assignment, so the answers need no lock: at worst they are one
step old.

*Healthy* means the loop is making progress: it began a step within ``stall_s``. Restores run
a slice per loop turn, so a restore never excuses a stalled loop; a rebuild of the clients
that keeps failing (no step since it began) turns unhealthy after ``stall_s`` as well.
*Ready* means: partitions assigned, none restoring, the lag of each measured since its
restore ended and at most ``max_lag`` records, and no recovery under way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
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
        max_lag: int,
        clock: Clock = time.monotonic,
        reports_lag: bool = True,
    ) -> None:
        """``reports_lag=False``: a process that never calls :meth:`lag` is ready once
        restored (its lag is watched from outside)."""
        self.stall_s = stall_s
        self.max_lag = max_lag
        self.reports_lag = reports_lag
        self._clock = clock
        self._started_at = clock()
        self._last_step: float | None = None
        self._recovering_since: float | None = None
        self._restoring: frozenset[int] = frozenset()
        self._unmeasured: frozenset[int] = frozenset()  # restored, lag not measured since
        self._assigned = False
        self._lag: dict[int, int] = {}

    # -- reported by the loop -------------------------------------------------------------

    def step(self) -> float:
        """A step of the loop began; returns the time, for its duration."""
        now = self._clock()
        self._last_step = now
        self._recovering_since = None
        return now

    def restore_begin(self, partitions: Iterable[int]) -> None:
        self._restoring = self._restoring | frozenset(partitions)

    def restore_end(self, partitions: Iterable[int] = ()) -> None:
        """These partitions are restored (none: a process without any is simply ready)."""
        done = frozenset(partitions)
        self._restoring = self._restoring - done
        if self.reports_lag:
            self._unmeasured = self._unmeasured | done
        self._assigned = True

    def revoked(self, partitions: Iterable[int]) -> None:
        gone = frozenset(partitions)
        self._restoring = self._restoring - gone
        self._unmeasured = self._unmeasured - gone

    def recovering(self) -> None:
        """The clients are being rebuilt: every partition is lost until assigned again."""
        if self._recovering_since is None:
            self._recovering_since = self._clock()
        self._restoring = frozenset()
        self._unmeasured = frozenset()
        self._assigned = False
        self._lag = {}

    def lag(self, by_partition: Mapping[int, int], unknown: Iterable[int] = ()) -> None:
        """Records behind on every owned partition (replaces the previous report); ``unknown``:
        owned partitions whose end is not known (no valid high watermark), never caught up."""
        self._lag = dict(by_partition)
        self._unmeasured = frozenset(unknown)

    def restoring_count(self) -> int:
        return len(self._restoring)

    # -- asked by the HTTP thread ---------------------------------------------------------

    def health(self) -> Verdict:
        now = self._clock()
        recovering = self._recovering_since
        if recovering is not None and now - recovering > self.stall_s:
            took = round(now - recovering, 3)
            return Verdict(False, "recovery retrying", {"recovering_s": took})
        last = self._last_step if self._last_step is not None else self._started_at
        idle = now - last
        detail = {"since_last_step_s": round(idle, 3), "restoring": len(self._restoring)}
        if idle > self.stall_s:
            return Verdict(False, "loop stalled", detail)
        return Verdict(True, "ok", detail)

    def readiness(self) -> Verdict:
        if self._recovering_since is not None:
            return Verdict(False, "recovering")
        restoring = self._restoring
        if restoring:
            return Verdict(False, "restoring", {"partitions": sorted(restoring)})
        if not self._assigned:
            return Verdict(False, "not assigned yet")
        if self._unmeasured:
            return Verdict(False, "catching up", {"unmeasured": sorted(self._unmeasured)})
        behind = {p: n for p, n in self._lag.items() if n > self.max_lag}
        if behind:
            return Verdict(False, "catching up", {"lag_records": behind})
        return Verdict(True, "ok")
