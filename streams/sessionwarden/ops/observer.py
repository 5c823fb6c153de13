"""What the enforcer's loop tells its observer, and the observer that records nothing
(metrics disabled, and the cost benchmark's baseline). The Prometheus one is
:class:`sessionwarden.enforcer.metrics.EnforcerMetrics`. The observer is told what happened
after each decision (``applied``, ``committed``, ``aborted``...): it never makes one."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sessionwarden.ops.progress import Progress


class EnforcerState(Protocol):
    received_watermark: float

    def live_sessions(self) -> int: ...


class Enforcer(Protocol):
    @property
    def state(self) -> EnforcerState: ...


class Outcome(Protocol):
    """What became of an event (sessionwarden.enforcer.engine.outcome.Outcome)."""

    @property
    def kind(self) -> str: ...


class Partition(Protocol):
    """What the loop keeps per owned input partition (PartitionRuntime)."""

    next_offset: int
    position: int

    @property
    def enforcer(self) -> Enforcer: ...


class Watermarks(Protocol):
    def get_watermark_offsets(
        self, partition: Any, timeout: float = ..., cached: bool = ...
    ) -> Any: ...


class Restored(Protocol):
    """A partition's finished restore (restore.Pending)."""

    records: int
    started: float


class EnforcerObserver:
    """The calls the loop makes; this base records nothing."""

    progress: Progress | None = None

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def step(self) -> float:
        return time.monotonic()

    def applied(self, event_type: str, outcome: Outcome) -> None:
        """An event of ``event_type`` was decided: ``outcome`` says what became of it."""

    def dead_lettered(self, reason: str) -> None:
        pass

    def forwarded(self) -> None:
        pass

    def revoked(self, revocation: Mapping[str, Any]) -> None:
        pass

    def committed(self, started: float) -> None:
        pass

    def batch_done(
        self, events: int, started: float, parts: Mapping[int, Partition], consumer: Watermarks
    ) -> None:
        pass

    def aborted(self, cause: str) -> None:
        pass

    def recovering(self, cause: str) -> None:
        pass

    def fetch_stalled(self, consumer: str) -> None:
        """``consumer`` (input, commands or restore) stopped fetching with records waiting and
        was sought back or reopened (kafka.stall). Rare: never called on the hot path."""

    def restore_begin(self, partitions: list[int]) -> None:
        pass

    def restore_end(self, done: Sequence[tuple[int, Restored]]) -> None:
        pass

    def partitions_revoked(self, partitions: list[int]) -> None:
        pass
