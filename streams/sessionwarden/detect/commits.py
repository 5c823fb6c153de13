"""A watch on faust's commit bookkeeping: an audit partition whose committed offset can never
move again is re-read from that offset.

faust commits a partition up to the first hole in the offsets acknowledged since its last
commit; while the lowest acknowledged offset is more than one past the committed one, it
commits nothing on that partition (``Consumer._new_offset`` returns None). Its holes are meant
to be filled by the records still in flight and, for offsets that hold no record a consumer is
given (transaction markers, aborted records), by the gaps it notes as it reads. A rebalance
under a hung broker breaks that: faust drops its gaps and acknowledgements at the revocation,
seeks back to the committed offsets, and records read and cleared out of its queues around it
(their offsets already passed by its read position) are never acknowledged nor noted as gaps.
Nothing then fills the hole, so the partition's committed offset stays where it is for good
(the lag stays wrong, and a restart replays everything past it) while the worker reads and
alerts on.

The watch finds such a hole (faust's own test for it, with no record of that partition in
flight) that has not changed for :data:`STUCK_AFTER_S` and seeks the partition back to its
committed offset: every record in the hole is read and judged again (judging is idempotent,
docs/DETECTORS.md) and acknowledged, the offsets without records are noted as gaps, and faust
commits past them. Nothing is ever marked done that was not judged.

It also drops duplicates from faust's list of acknowledged offsets. faust notes each gap it
reads past (a transaction marker) together with the offset of the record just read, and adds
the gap to that list at its next commit, so the record's own acknowledgement comes in twice;
faust commits only up to the first run of consecutive offsets, which a duplicate ends. Behind
transactional input (one marker every few records) it thus committed one transaction per
commit interval, a few records a second, however far its acknowledgements had got: after a
re-read the committed offset took minutes to reach the end. Tidied every second, it commits
all it has acknowledged within two commits (the one that merges the gaps still stops at the
first duplicate it makes); the set of acknowledged offsets is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

STUCK_AFTER_S = 10.0
"""A hole with nothing in flight is re-read once it has stayed the same this long (many commit
intervals: a hole that records in flight will fill is gone long before)."""


@dataclass(frozen=True)
class Holding:
    """What faust holds for one partition: the offset it committed last (None before its
    first commit), the lowest offset acknowledged since (None if none), and whether a record
    of the partition was handed to the stream and is not yet acknowledged."""

    committed: int | None
    lowest_acked: int | None
    in_flight: bool

    @property
    def stuck(self) -> bool:
        """faust will commit nothing on this partition until the hole is filled (its own test,
        ``Consumer._new_offset``: a committed offset of 0 or None is never held back)."""
        return (
            bool(self.committed)
            and self.lowest_acked is not None
            and self.committed is not None
            and self.lowest_acked - self.committed > 1
            and not self.in_flight
        )


@dataclass
class CommitWatch:
    """Decides, per partition, when a stuck hole is re-read (a pure decision on a clock)."""

    stuck_after_s: float = STUCK_AFTER_S
    _seen: dict[Hashable, tuple[Holding, float]] = field(default_factory=dict)

    def check(self, now: float, partition: Hashable, holding: Holding) -> int | None:
        """The offset to re-read ``partition`` from, or None. A hole is re-read once it has
        stayed the same (same committed and lowest acknowledged offset, nothing in flight)
        for ``stuck_after_s``; if a re-read does not fill it, it is tried again as late."""
        if not holding.stuck:
            self._seen.pop(partition, None)
            return None
        seen = self._seen.get(partition)
        if seen is None or seen[0] != holding:
            self._seen[partition] = (holding, now)
            return None
        if now - seen[1] < self.stuck_after_s:
            return None
        self._seen[partition] = (holding, now)  # the next try only as late again
        return holding.committed

    def forget(self, keep: Iterable[Hashable]) -> None:
        """Drop partitions no longer assigned."""
        kept = set(keep)
        for partition in [p for p in self._seen if p not in kept]:
            del self._seen[partition]


class Bookkeeping(Protocol):
    """The faust consumer's view the watch reads, and the seek it asks for."""

    def partitions(self) -> list[Any]: ...
    def holding(self, partition: Any) -> Holding: ...
    def reread(self, partition: Any, offset: int) -> Awaitable[None]: ...
    def tidy(self, partition: Any) -> int: ...


class FaustBookkeeping:
    """:class:`Bookkeeping` over faust-streaming's Consumer (its private offsets bookkeeping:
    ``_committed_offset``, ``_acked``, ``_unacked_messages``; checked against 0.15.3)."""

    def __init__(self, consumer: Any, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic

    def partitions(self) -> list[Any]:
        return sorted(
            (tp for tp in self.consumer.assignment() if tp.topic == self.topic),
            key=lambda tp: tp.partition,
        )

    def holding(self, partition: Any) -> Holding:
        consumer = self.consumer
        acked = consumer._acked.get(partition)
        in_flight = any(m.tp == partition and not m.acked for m in list(consumer._unacked_messages))
        return Holding(
            committed=consumer._committed_offset.get(partition),
            lowest_acked=min(acked) if acked else None,
            in_flight=in_flight,
        )

    def tidy(self, partition: Any) -> int:
        """Drop duplicate acknowledged offsets (sorted, as faust keeps them); returns how many."""
        acked = self.consumer._acked.get(partition)
        if not acked:
            return 0
        distinct = sorted(set(acked))
        dropped = len(acked) - len(distinct)
        if dropped:
            acked[:] = distinct  # in place: faust holds this list
        return dropped

    def reread(self, partition: Any, offset: int) -> Awaitable[None]:
        # faust's seek moves the fetcher and its read position: the records are read again.
        result: Awaitable[None] = self.consumer.seek(partition, offset)
        return result


async def watch_commits(
    watch: CommitWatch,
    book: Bookkeeping,
    now: float,
    repaired: Callable[[], None] = lambda: None,
) -> list[tuple[Any, int]]:
    """One look at every assigned partition; re-reads the stuck ones. Returns what it
    re-read (partition, offset)."""
    partitions = book.partitions()
    watch.forget(partitions)
    done = []
    for tp in partitions:
        book.tidy(tp)
        holding = book.holding(tp)
        offset = watch.check(now, tp, holding)
        if offset is None:
            continue
        log.warning(
            "audit partition's committed offset stuck behind a hole in faust's acknowledged "
            "offsets; reading it again from the committed offset",
            extra={
                "partition": getattr(tp, "partition", tp),
                "committed": holding.committed,
                "lowest_acked": holding.lowest_acked,
            },
        )
        await book.reread(tp, offset)
        repaired()
        done.append((tp, offset))
    return done
