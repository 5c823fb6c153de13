"""The stalled-consumer decision (sessionwarden.kafka.stall) on a fake clock: "stalled" only when
no position moved for the threshold while a partition's known end is past its position; never
while positions move, never when idle at the end, never on an end the broker did not give. The
ends are asked of a client of the watch's own, never of the consumer watched (whose connection
may be the very thing wedged), and that client is made anew when it keeps going unanswered."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sessionwarden.kafka.stall import RENEW_AFTER, AdminEnds, Ends, FetchStall, Stall, StallWatch
from tests.unit.stall_fakes import Clock, EndsAdmin, ends_of

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


def test_ends_unanswered_on_every_ask_in_a_row_call_for_a_new_client() -> None:
    stall = FetchStall(10, now=0)
    stall.observe({A: 5}, now=0)
    for i in range(RENEW_AFTER - 1):
        stall.stalled({A: None}, now=10 * (i + 1))
        assert not stall.renew_probe()
    stall.stalled({A: None}, now=10 * RENEW_AFTER)
    assert stall.renew_probe()
    assert not stall.renew_probe(), "asked once per run of unanswered asks"
    stall.stalled({A: None}, now=100)
    stall.stalled({A: Ends(0, 5)}, now=110)  # one answer starts the count over
    stall.stalled({A: None}, now=120)
    assert not stall.renew_probe()


class Probed:
    """A consumer's probe surface: positions set by the test. Its own watermark query times out,
    as a consumer's did whose connection stayed wedged after the broker thawed."""

    def __init__(self, positions: dict[int, int]) -> None:
        self.positions = positions
        self.own_asks = 0

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("t", p) for p in sorted(self.positions)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition("t", tp.partition, self.positions[tp.partition]) for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = 0, cached: bool = True
    ) -> tuple[int, int] | None:
        self.own_asks += 1
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))


def run(watch: StallWatch, consumer: Probed, clock: Clock, until: float) -> list[float]:
    """Check every half second up to ``until``; the moments a reopen was asked."""
    asked = []
    while clock.t < until:
        clock.t += 0.5
        if watch.check(consumer) is not None:
            asked.append(clock.t)
            watch.reopened()
    return asked


def broker(ends: dict[int, int]) -> EndsAdmin:
    return EndsAdmin(lambda tp: ends[tp.partition])


def test_a_consumer_wedged_behind_the_end_is_reopened_though_it_cannot_answer_itself() -> None:
    """The broker answers another client: the consumer's own unanswered query is no excuse."""
    clock = Clock()
    consumer = Probed({0: 5, 1: 7})
    admin = broker({0: 5, 1: 9})
    watch = StallWatch(10, ends_of(admin), clock=clock)
    # first seen at the first check (1 s), still for 10 s; the reopened one gets 10 s again
    assert run(watch, consumer, clock, until=25) == [11.0, 22.0]
    assert consumer.own_asks == 0
    assert all(ask["isolation_level"].name == "READ_COMMITTED" for ask in admin.asks)


class Seekable(Probed):
    """A Probed consumer that can be sought; ``resumes`` says whether a seek gets it fetching
    again (a consumer still reconnecting after a thaw) or not (a fetcher wedged for good)."""

    def __init__(self, positions: dict[int, int], resumes: bool) -> None:
        super().__init__(positions)
        self.resumes = resumes
        self.sought: list[tuple[int, int]] = []

    def seek(self, tp: TopicPartition) -> None:
        self.sought.append((tp.partition, tp.offset))
        if self.resumes:
            self.positions = {p: o + 2 for p, o in self.positions.items()}  # read again


def tended(watch: StallWatch, consumer: Seekable, clock: Clock, until: float) -> list[float]:
    """``tend`` every half second up to ``until``; the moments the consumer was replaced."""
    replaced: list[float] = []
    while clock.t < until:
        clock.t += 0.5
        watch.tend(consumer, lambda _: replaced.append(clock.t), "replaced")
    return replaced


def test_a_stall_is_first_sought_back_and_a_consumer_that_resumes_is_kept() -> None:
    """Replacing a group member makes its group wait for the old one (up to the session
    timeout): a consumer that a seek gets fetching again is never replaced."""
    clock = Clock()
    consumer = Seekable({0: 5, 1: 7}, resumes=True)
    watch = StallWatch(10, ends_of(broker({0: 50, 1: 90})), clock=clock)
    assert [] == tended(watch, consumer, clock, until=25)
    assert [(0, 5), (1, 7)] == consumer.sought[:2]


def test_a_consumer_still_stalled_after_its_seek_is_replaced() -> None:
    clock = Clock()
    consumer = Seekable({0: 5, 1: 7}, resumes=False)
    watch = StallWatch(10, ends_of(broker({0: 5, 1: 9})), clock=clock)
    # sought back at 11 s, still for 10 s more: replaced at 22 s; the new one is sought first
    assert [22.0] == tended(watch, consumer, clock, until=30)
    assert [(0, 5), (1, 7)] == consumer.sought


class ForgetsOnSeek(Seekable):
    """librdkafka's way: a sought partition reports no position until it reads again."""

    def seek(self, tp: TopicPartition) -> None:
        super().seek(tp)
        self.positions[tp.partition] = -1001


def test_a_consumer_replaced_after_its_seek_resumes_where_it_was_sought() -> None:
    """A collector replaced after its seek was reopened at no position at all and read its
    topic again from the beginning (a revocation counted twice)."""
    clock = Clock()
    consumer = ForgetsOnSeek({0: 5, 1: 7}, resumes=False)
    watch = StallWatch(10, ends_of(broker({0: 50, 1: 90})), clock=clock)
    stalls: list[Stall] = []
    while clock.t < 30:
        clock.t += 0.5
        watch.tend(consumer, stalls.append, "replaced")
    assert [{A: 5, B: 7}] == [stall.positions for stall in stalls]
    assert [TopicPartition("t", 0, 5), TopicPartition("t", 1, 7)] == stalls[0].resume_at(-2)


def test_the_watch_leaves_an_idle_consumer_alone_and_asks_the_broker_rarely() -> None:
    clock = Clock()
    consumer = Probed({0: 5, 1: 9})
    admin = broker({0: 5, 1: 9})
    watch = StallWatch(10, ends_of(admin), clock=clock)
    assert run(watch, consumer, clock, until=60) == []
    assert len(admin.asks) <= 6


def test_a_broker_that_does_not_answer_is_unknown_never_a_reopen() -> None:
    """Unanswered asks never reopen; a client left unanswered is replaced, and the first
    answer of a new one shows the stall."""
    clock = Clock()
    consumer = Probed({0: 5, 1: 7})
    down = [True]
    made: list[EndsAdmin] = []

    def make() -> EndsAdmin:
        made.append(broker({0: 5, 1: 9}))
        made[-1].down = down[0]
        return made[-1]

    watch = StallWatch(10, AdminEnds(make), clock=clock)
    # asked every 10 s from 11 s; a new client after every second unanswered ask
    assert run(watch, consumer, clock, until=60) == []
    assert 3 == len(made)
    down[0] = False  # the broker answers again, but not the client made while it did not
    assert run(watch, consumer, clock, until=95) == [71.0, 82.0, 93.0]
    assert 4 == len(made)


def test_an_invalid_offset_is_unknown() -> None:
    """A frozen broker can answer OFFSET_INVALID for every partition instead of failing."""
    probe = ends_of(broker({0: -1001, 1: 9}))
    assert {A: None, B: Ends(-1, 9)} == probe({A: 5, B: 7}, timeout=1)


def test_the_low_watermark_is_asked_only_for_a_partition_never_read() -> None:
    admin = EndsAdmin(lambda tp: 9, low=lambda tp: 4)
    assert {A: Ends(4, 9), B: Ends(-1, 9)} == ends_of(admin)({A: -1001, B: 7}, timeout=1)
    assert 2 == len(admin.asks)
    assert {B: Ends(-1, 9)} == ends_of(admin)({B: 7}, timeout=1)
    assert 3 == len(admin.asks)


def test_a_client_that_refuses_the_question_is_unknown() -> None:
    class Refusing:
        def list_offsets(self, specs: object, **kwargs: object) -> dict[TopicPartition, object]:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    assert {A: None} == AdminEnds(lambda: Refusing())({A: 5}, timeout=1)  # type: ignore[arg-type,return-value]


def test_the_owners_offsets_stand_in_for_a_position_not_yet_read() -> None:
    clock = Clock()
    consumer = Probed({0: -1001})
    ends = {0: 9}
    watch = StallWatch(10, ends_of(broker(ends)), clock=clock, fallback=lambda: {A: 9})
    assert run(watch, consumer, clock, until=30) == []
    ends[0] = 12
    assert run(watch, consumer, clock, until=60)


def test_a_stall_resumes_each_partition_where_it_stood() -> None:
    stall = Stall(12.0, {A: 5, B: -1001}, {})
    assert [(0, 5), (1, -2)] == [(tp.partition, tp.offset) for tp in stall.resume_at(-2)]


def test_a_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FetchStall(0, now=0)
