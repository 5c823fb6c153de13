"""What the enforcer's Kafka shell keeps per owned partition, and its counters."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, field

from streams.enforcer.core import PartitionEnforcer
from streams.enforcer.horizon import PartitionClock


@dataclass
class PartitionRuntime:
    """An owned input partition: its enforcer, how far its input has been read, and how far
    that is in broker time."""

    enforcer: PartitionEnforcer
    clock: PartitionClock
    next_offset: int = 0  # offset of the next input record to process
    position: int = 0  # the consumer's position (moves past transaction markers too)

    def read_to(self) -> int:
        return max(self.next_offset, self.position)


@dataclass
class LoopStats:
    events: int = 0
    dead_letters: int = 0
    forwarded: int = 0
    batches: int = 0
    aborts: int = 0
    recoveries: int = 0
    restored_records: int = 0
    last_restore_s: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)


def freeze_state() -> None:
    """After a restore: move every object alive now (the restored sessions above all) out of
    the cyclic collector's reach. They live as long as the partition and form no reference
    cycles; left tracked, every full collection would walk all of them (seconds at a million
    sessions, in the middle of a batch). Reference counting still frees a frozen object once
    nothing refers to it."""
    gc.freeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while restored state is built: it would walk the growing heap
    again and again (restored records form no cycles; reference counting runs as ever)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
