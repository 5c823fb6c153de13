"""A sink whose Kafka consumer stops fetching (as after a broker frozen and thawed: the thread
alive, nothing more returned, its own watermark queries unanswered, while the broker's end
offsets, asked through another client, move on) reopens it; the new consumer seeks to the
offsets stored with the rows, so every record is stored exactly once."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.policy import default_policy
from sessionwarden.sink.postgres.consumer import PostgresSink
from sessionwarden.sink.postgres.plan import Batch
from sessionwarden.sink.postgres.store import OffsetConflict
from tests.unit.sdk.fakes import FakeMessage, revocation
from tests.unit.stall_fakes import Clock, EndsAdmin, ends_of

TOPIC = Settings().topics.revocations


class Store:
    """The rows and offsets of one transaction each, refusing a write from stale offsets."""

    def __init__(self, sink: PostgresSink, expected: int) -> None:
        self.sink, self.expected = sink, expected
        self.stored: dict[int, int] = {}
        self.sessions: list[str] = []
        self.refused_signals = 0

    def offsets(self, partitions: Any) -> dict[int, int]:
        for p in partitions:
            self.stored.setdefault(p, 0)
        return dict(self.stored)

    def write(
        self, batch: Batch, seen: dict[int, int], ends: object = None, positions: object = None
    ) -> int:
        for p in batch.next_offsets:
            if seen[p] != self.stored[p]:
                raise OffsetConflict(f"{p} moved")
        self.stored.update(batch.next_offsets)
        self.sessions += [row.session_id for row in batch.rows]
        if len(self.sessions) >= self.expected:
            self.sink.stop()
        return 0

    def release(self, positions: object) -> int:
        return 0

    def cut_off(self, tags: list[str], terminate_all: bool) -> tuple[int, int]:
        return 0, 0

    def prune(self, now: object) -> int:
        return 0


class Consumer:
    """Reads the partitions' records from where it was assigned; after ``stops_after`` records
    it returns nothing more, while the broker's end offsets stay past its positions."""

    def __init__(
        self, log: dict[int, list[bytes]], clock: Clock, stops_after: int, sink: PostgresSink
    ) -> None:
        self.log, self.clock, self.left, self.sink = log, clock, stops_after, sink
        self.next: dict[int, int] = {}
        self.read: dict[int, int] = {}
        self.closed = False

    def subscribe(self, topics: list[str], on_assign: Any) -> None:
        on_assign(self, [TopicPartition(TOPIC, p) for p in sorted(self.log)])

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.next = {tp.partition: tp.offset for tp in partitions}

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in sorted(self.next)]

    def poll(self, timeout: float) -> FakeMessage | None:
        self.clock.t += timeout
        if self.clock.t > 600:  # the sink never recovers: end the test rather than spin
            self.sink.stop()
        got = self.consume(1, timeout)
        return got[0] if got else None

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        out = []
        for p, offset in sorted(self.next.items()):
            while len(out) < n and self.left > 0 and offset < len(self.log[p]):
                out.append(FakeMessage(self.log[p][offset], p, offset))
                offset, self.left = offset + 1, self.left - 1
            self.next[p] = self.read[p] = offset
        return out

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, tp.partition, self.read.get(tp.partition, -1001))
                for tp in partitions]  # fmt: skip

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float = 0, cached: bool = False
    ) -> tuple[int, int]:
        if cached or self.left > 0:  # cached: what the client last heard, its own position
            return 0, self.read.get(tp.partition, 0) if cached else len(self.log[tp.partition])
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))  # wedged: unanswered too

    def seek(self, tp: TopicPartition) -> None:
        """Sought back, it stays stopped: only a new consumer resumes."""

    def close(self) -> None:
        self.closed = True


def test_a_consumer_that_stops_fetching_is_reopened_and_every_record_is_stored_once() -> None:
    log = {p: [encode(revocation(f"s{p}-{i}", 0, "logout")) for i in range(130)] for p in (0, 1)}
    clock = Clock()
    sink = PostgresSink(Settings(), default_policy())
    store = Store(sink, expected=260)
    sink._store = store  # type: ignore[assignment]
    sink.clock = clock
    sink.ends = ends_of(EndsAdmin(lambda tp: len(log[tp.partition])))
    stuck = Consumer(log, clock, stops_after=138, sink=sink)
    fresh: list[Consumer] = []

    def factory(config: dict[str, Any]) -> Any:
        assert config["group.id"] == sink.settings.sink.group_id
        fresh.append(Consumer(log, clock, stops_after=10**6, sink=sink))
        return fresh[-1]

    sink.consumer_factory = factory
    sink._consumer = stuck  # type: ignore[assignment]
    stuck.subscribe([TOPIC], on_assign=sink._on_assign)
    sink._loop()

    assert stuck.closed and len(fresh) == 1
    assert sink.stats["consumer_reopens"] == 1
    assert sorted(store.sessions) == sorted(f"s{p}-{i}" for p in (0, 1) for i in range(130))
    assert store.stored == {0: 130, 1: 130}
    assert sink.stats["rows"] == 260
    assert clock.t < 2 * sink.settings.kafka.fetch_stall_s + 5


def test_an_idle_sink_at_the_end_is_never_reopened() -> None:
    log = {0: [encode(revocation(f"s{i}", 0, "logout")) for i in range(5)]}
    clock = Clock()
    sink = PostgresSink(Settings(), default_policy())
    store = Store(sink, expected=10**6)
    sink._store = store  # type: ignore[assignment]
    sink.clock = clock
    sink.ends = ends_of(EndsAdmin(lambda tp: len(log[tp.partition])))
    consumer = Consumer(log, clock, stops_after=10**6, sink=sink)  # stops the sink at 600 s
    sink.consumer_factory = lambda config: (_ for _ in ()).throw(AssertionError("reopened"))
    sink._consumer = consumer  # type: ignore[assignment]
    consumer.subscribe([TOPIC], on_assign=sink._on_assign)
    sink._loop()
    assert len(store.sessions) == 5 and sink.stats["consumer_reopens"] == 0
