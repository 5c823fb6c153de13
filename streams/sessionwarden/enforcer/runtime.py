"""What the enforcer's Kafka shell keeps per owned partition, and its counters."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field

from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.horizon import PartitionClock


@dataclass
class PartitionRuntime:
    """An owned input partition: its enforcer, how far its input has been read, and how far
    that is in broker time."""

    enforcer: PartitionEnforcer
    clock: PartitionClock
    next_offset: int = 0  # offset of the next input record to process
    position: int = 0  # the consumer's position (moves past transaction markers too)
    held: int | None = None  # first record consumed but left to the next transaction

    def read_to(self) -> int:
        """The next offset not yet processed: records the input budget left for the next
        transaction are consumed, not read (they may hold the activity a deadline awaits)."""
        read = max(self.next_offset, self.position)
        return read if self.held is None else min(read, self.held)


@dataclass
class LoopStats:
    events: int = 0
    dead_letters: int = 0
    forwarded: int = 0
    batches: int = 0
    aborts: int = 0
    budget_cuts: int = 0  # batches cut short by the input budget
    recoveries: int = 0
    stuck_calls: int = 0  # client calls given up as stuck (txn.CallStuck)
    fetch_stalls: int = 0  # input consumer found standing still with records waiting
    restored_records: int = 0
    last_restore_s: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def restoring_heap() -> Iterator[None]:
    """Build restored state with the cyclic collector paused, then freeze what was built.

    Paused: a collection would walk the growing heap again and again. Frozen before the
    collector runs again: otherwise its first collection walks all of it at once (seconds at
    a million sessions), and every full collection after that. Restored state lives as long
    as its partition and forms no reference cycles; reference counting still frees a frozen
    object once nothing refers to it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
