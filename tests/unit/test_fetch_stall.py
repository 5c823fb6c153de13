"""The stalled-consumer decision (sessionwarden.kafka.stall) on a fake clock: "stalled" only when
no position moved for the threshold while a partition's known end is past its position; never
while positions move, never when idle at the end, never on an end the broker did not give."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sessionwarden.kafka.stall import Ends, FetchStall, StallWatch

A, B = ("t", 0), ("t", 1)


def test_positions_that_stand_still_behind_a_known_end_are_a_stall() -> None:
    stall = FetchStall(10, now=0)
    stall.observe({A: 5, B: 7}, now=0)
    stall.observe({A: 5, B: 7}, now=9.9)
    assert not stall.due(9.9)
    assert stall.due(10)
    assert stall.stalled({A: Ends(0, 5), B: Ends(0, 9)}, now=10)


def test_moving_positions_are_never_due() -> None:
    stall = FetchStall(10, now=0)
    for t in range(0, 60, 3):
        stall.observe({A: t}, now=t)
        assert not stall.due(t)


def test_idle_at_the_end_is_no_stall() -> None:
    stall = FetchStall(10, now=0)
    stall.observe({A: 5, B: 9}, now=0)
    assert stall.due(30)
    assert not stall.stalled({A: Ends(0, 5), B: Ends(2, 9)}, now=30)


def test_an_unknown_end_is_never_a_reason() -> None:
    stall = FetchStall(10, now=0)
    stall.observe({A: 5, B: 7}, now=0)
    assert not stall.stalled({A: None, B: Ends(-1001, -1001)}, now=10)


def test_a_position_never_read_counts_from_the_low_watermark() -> None:
    stall = FetchStall(10, now=0)
    stall.observe({A: -1001}, now=0)
    assert not stall.stalled({A: Ends(4, 4)}, now=10)
    assert stall.stalled({A: Ends(4, 6)}, now=20)


def test_every_verdict_starts_the_wait_over() -> None:
    stall = FetchStall(10, now=0)
    stall.observe({A: 5}, now=0)
    assert stall.stalled({A: Ends(0, 9)}, now=10)
    stall.observe({A: 5}, now=11)
    assert not stall.due(11)
    assert stall.due(20)


class Probed:
    """A consumer's probe surface: positions and ends set by the test; ends may fail."""

    def __init__(self, positions: dict[int, int], ends: dict[int, Any]) -> None:
        self.positions, self.ends = positions, ends
        self.asked: list[int] = []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("t", p) for p in sorted(self.positions)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition("t", tp.partition, self.positions[tp.partition]) for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = 0, cached: bool = True
    ) -> tuple[int, int] | None:
        assert not cached, "a stalled consumer's cached watermarks stand still too"
        assert 0 < timeout <= 2
        self.asked.append(partition.partition)
        end = self.ends[partition.partition]
        if isinstance(end, Exception):
            raise end
        return end  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run(watch: StallWatch, consumer: Probed, clock: Clock, until: float) -> list[float]:
    """Check every half second up to ``until``; the moments a reopen was asked."""
    asked = []
    while clock.t < until:
        clock.t += 0.5
        if watch.check(consumer) is not None:
            asked.append(clock.t)
            watch.reopened()
    return asked


def test_the_watch_asks_for_a_reopen_of_a_consumer_that_stopped_behind_the_end() -> None:
    clock = Clock()
    consumer = Probed({0: 5, 1: 7}, {0: (0, 5), 1: (0, 9)})
    watch = StallWatch(10, clock=clock)
    # first seen at the first check (1 s), still for 10 s; the reopened one gets 10 s again
    assert run(watch, consumer, clock, until=25) == [11.0, 22.0]


def test_the_watch_leaves_an_idle_consumer_alone_and_asks_the_broker_rarely() -> None:
    clock = Clock()
    consumer = Probed({0: 5, 1: 9}, {0: (0, 5), 1: (0, 9)})
    watch = StallWatch(10, clock=clock)
    assert run(watch, consumer, clock, until=60) == []
    assert len(consumer.asked) <= 2 * 6


def test_a_probe_that_fails_or_times_out_is_unknown_never_a_reopen() -> None:
    clock = Clock()
    timeout = KafkaException(KafkaError(KafkaError._TIMED_OUT))
    consumer = Probed({0: 5, 1: 7}, {0: timeout, 1: (0, 9)})
    watch = StallWatch(10, clock=clock)
    assert run(watch, consumer, clock, until=60) == []
    assert 1 not in consumer.asked, "after one unanswered ask the rest are unknown"
    consumer.ends[0] = None  # get_watermark_offsets' answer on a timeout
    assert run(watch, consumer, clock, until=120) == []
    consumer.ends[0] = (0, 6)  # the broker answers again: the stall shows
    assert run(watch, consumer, clock, until=140)


def test_the_owners_offsets_stand_in_for_a_position_not_yet_read() -> None:
    clock = Clock()
    consumer = Probed({0: -1001}, {0: (0, 9)})
    watch = StallWatch(10, clock=clock, fallback=lambda: {A: 9})
    assert run(watch, consumer, clock, until=30) == []
    consumer.ends[0] = (0, 12)
    assert run(watch, consumer, clock, until=60)


def test_a_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FetchStall(0, now=0)
