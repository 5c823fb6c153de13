"""The watch on faust's commit bookkeeping: a partition faust can never commit again (a hole at
the head of its acknowledged offsets, nothing in flight) is re-read from its committed offset,
and only then."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from sessionwarden.detect.commits import (
    STUCK_AFTER_S,
    CommitWatch,
    FaustBookkeeping,
    Holding,
    watch_commits,
)

STUCK = Holding(committed=61, lowest_acked=63, in_flight=False)


def test_faust_commits_nothing_past_a_hole_at_the_head_of_its_acknowledged_offsets() -> None:
    """What the watch is for, on faust's own bookkeeping: records 61 and 62 read but never
    acknowledged, everything after them acknowledged; faust has no offset to commit, ever."""
    app = faust.App("commit-watch-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer = app.consumer
    tp = TP("audit", 2)
    consumer._committed_offset[tp] = 61
    consumer._acked[tp].extend(range(63, 248))
    consumer._acked_index[tp].update(range(63, 248))
    assert consumer._new_offset(tp) is None
    assert consumer._new_offset(tp) is None  # and not later either: nothing changes it
    book = FaustBookkeeping(consumer, "audit")
    assert STUCK == book.holding(tp)


def _marked_consumer() -> tuple[Any, TP]:
    """Records 57 to 67 judged and acknowledged; transaction markers at 60, 63 and 66, which
    faust noted as gaps together with the record read after each (as its _add_gap does)."""
    app = faust.App("commit-watch-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer = app.consumer
    tp = TP("audit", 0)
    consumer._committed_offset[tp] = 57
    acked = [57, 58, 59, 61, 62, 64, 65, 67]
    consumer._acked[tp].extend(acked)
    consumer._acked_index[tp].update(acked)
    for marker in (60, 63, 66):
        consumer._gap[tp].addi(marker, marker + 2)
    return consumer, tp


def _commits(consumer: Any, tp: TP, tidy: bool) -> list[int]:
    """The offsets faust commits, one per commit interval, until it has nothing to commit."""
    done = []
    while True:
        if tidy:
            FaustBookkeeping(consumer, "audit").tidy(tp)
        offset = consumer._new_offset(tp)
        if offset is None:
            return done
        if consumer._should_commit(tp, offset):
            consumer._committed_offset[tp] = offset
            done.append(offset)


def test_without_duplicates_faust_commits_everything_acknowledged_in_two_commits() -> None:
    """faust alone: the gaps merged in duplicate 61, 64 and 67, and each duplicate ends its
    commit, so it takes one commit interval per transaction. Tidied before each commit: the
    commit that merges the gaps stops at the first duplicate, the next one takes the rest."""
    consumer, tp = _marked_consumer()
    assert [62, 65, 68] == _commits(consumer, tp, tidy=False)
    consumer, tp = _marked_consumer()
    assert [62, 68] == _commits(consumer, tp, tidy=True)


def test_tidying_keeps_every_acknowledged_offset_and_nothing_else() -> None:
    app = faust.App("commit-watch-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer = app.consumer
    tp = TP("audit", 1)
    consumer._acked[tp].extend([70, 64, 64, 65, 63, 70])
    assert 2 == FaustBookkeeping(consumer, "audit").tidy(tp)
    assert [63, 64, 65, 70] == consumer._acked[tp]
    assert 0 == FaustBookkeeping(consumer, "audit").tidy(tp)
    assert 0 == FaustBookkeeping(consumer, "audit").tidy(TP("audit", 2))


def test_a_hole_that_stays_the_same_is_reread_from_the_committed_offset() -> None:
    watch = CommitWatch()
    assert watch.check(100.0, 2, STUCK) is None  # first seen
    assert watch.check(100.0 + STUCK_AFTER_S - 0.1, 2, STUCK) is None
    assert 61 == watch.check(100.0 + STUCK_AFTER_S, 2, STUCK)
    # Not again at once: if the re-read does not fill it, it is tried again as late.
    assert watch.check(100.0 + STUCK_AFTER_S + 1, 2, STUCK) is None
    assert 61 == watch.check(100.0 + 2 * STUCK_AFTER_S, 2, STUCK)


def test_a_record_in_flight_is_not_a_stuck_hole() -> None:
    """The batch being judged holds offsets below the acknowledged ones: wait for it, however
    long (a hung broker holds a batch's alerts for a minute)."""
    watch = CommitWatch()
    busy = Holding(committed=61, lowest_acked=63, in_flight=True)
    for t in range(0, 120, 5):
        assert watch.check(float(t), 2, busy) is None
    # Once it is acknowledged and the hole remains, the clock starts from then.
    assert watch.check(120.0, 2, STUCK) is None
    assert watch.check(120.0 + STUCK_AFTER_S - 1, 2, STUCK) is None
    assert 61 == watch.check(120.0 + STUCK_AFTER_S, 2, STUCK)


def test_no_hole_or_a_changing_one_is_never_reread() -> None:
    watch = CommitWatch()
    healthy = [
        Holding(committed=61, lowest_acked=62, in_flight=False),  # commits up to 62 and on
        Holding(committed=61, lowest_acked=60, in_flight=False),  # a duplicate below
        Holding(committed=61, lowest_acked=None, in_flight=False),  # all committed
        Holding(committed=None, lowest_acked=63, in_flight=False),  # not committed yet
        Holding(committed=0, lowest_acked=63, in_flight=False),  # faust never holds 0 back
    ]
    for t in range(0, 60):
        assert watch.check(float(t), 1, healthy[t % len(healthy)]) is None
    # A hole being filled (records read again after a seek) is not stuck: its clock restarts.
    for t, lowest in enumerate(range(90, 63, -1)):
        assert watch.check(float(3 * t), 0, Holding(61, lowest, False)) is None


def test_partitions_are_watched_apart_and_forgotten_when_revoked() -> None:
    watch = CommitWatch()
    assert watch.check(0.0, 0, STUCK) is None
    assert watch.check(5.0, 1, STUCK) is None
    assert 61 == watch.check(STUCK_AFTER_S, 0, STUCK)
    assert watch.check(STUCK_AFTER_S, 1, STUCK) is None
    watch.forget([0])  # partition 1 revoked, then assigned again: its clock starts over
    assert watch.check(5.0 + STUCK_AFTER_S, 1, STUCK) is None


@dataclass
class FakeBook:
    holdings: dict[int, Holding]
    reread_at: list[tuple[int, int]] = field(default_factory=list)

    def partitions(self) -> list[Any]:
        return sorted(self.holdings)

    def holding(self, partition: Any) -> Holding:
        return self.holdings[partition]

    async def reread(self, partition: Any, offset: int) -> None:
        self.reread_at.append((partition, offset))

    def tidy(self, partition: Any) -> int:
        return 0


def test_the_watch_rereads_only_the_stuck_partition_and_counts_it() -> None:
    book = FakeBook({0: Holding(45, 46, False), 1: STUCK, 2: Holding(39, 41, True)})
    watch = CommitWatch()
    counted: list[None] = []

    def look(now: float) -> list[tuple[Any, int]]:
        return asyncio.run(watch_commits(watch, book, now, lambda: counted.append(None)))

    assert [] == look(0.0)
    assert [] == look(STUCK_AFTER_S / 2)
    assert [(1, 61)] == look(STUCK_AFTER_S)
    assert [(1, 61)] == book.reread_at
    assert 1 == len(counted)
    book.holdings[1] = Holding(63, 64, False)  # the re-read filled it: faust committed past
    assert [] == look(3 * STUCK_AFTER_S)
    assert 1 == len(counted)
