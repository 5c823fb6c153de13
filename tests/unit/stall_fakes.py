"""An admin client's ``list_offsets`` over ends the test keeps: where the stall watches
(sessionwarden.kafka.stall) ask the broker, never through the consumer they watch."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from sessionwarden.kafka.stall import AdminEnds

LATEST = OffsetSpec.latest()


class EndsAdmin:
    """Answers ``list_offsets`` at once: ``high(tp)`` for latest, ``low(tp)`` (default 0) for
    earliest; every ask fails (timed out) while ``down``."""

    def __init__(
        self,
        high: Callable[[TopicPartition], int],
        low: Callable[[TopicPartition], int] = lambda _: 0,
    ) -> None:
        self.high, self.low = high, low
        self.down = False
        self.asks: list[dict[str, Any]] = []

    def list_offsets(
        self, topic_partition_offsets: dict[TopicPartition, Any], **kwargs: Any
    ) -> dict[TopicPartition, Future[Any]]:
        self.asks.append(kwargs)
        answers: dict[TopicPartition, Future[Any]] = {}
        for tp, spec in topic_partition_offsets.items():
            future: Future[Any] = Future()
            if self.down:
                future.set_exception(KafkaException(KafkaError(KafkaError._TIMED_OUT)))
            else:
                offset = self.high(tp) if spec == LATEST else self.low(tp)
                future.set_result(SimpleNamespace(offset=offset))
            answers[tp] = future
        return answers


def ends_of(admin: EndsAdmin) -> AdminEnds:
    """A probe that asks ``admin`` (as the real one asks its own AdminClient)."""
    return AdminEnds(lambda: admin)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Wedging:
    """A consumer assigned by hand over per-partition logs of records: up to ``per_call``
    records a partition per consume, and nothing more once ``wedge_after`` were returned (its
    fetcher stopped, as after a hung broker), while the records wait."""

    def __init__(
        self, topic: str, log: dict[int, list[Any]], wedge_after: int = 10**6, per_call: int = 4
    ) -> None:
        self.topic, self.log, self.left, self.per_call = topic, log, wedge_after, per_call
        self.next: dict[int, int] = {}
        self.closed = False
        self.sought: list[TopicPartition] = []

    def incremental_assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.next[tp.partition] = 0 if tp.offset == OFFSET_BEGINNING else tp.offset

    def incremental_unassign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.next.pop(tp.partition, None)

    def consume(self, n: int, timeout: float) -> list[Any]:
        out: list[Any] = []
        for p, at in sorted(self.next.items()):
            taken = self.log[p][at : at + min(self.per_call, self.left, n - len(out))]
            out += taken
            self.next[p] = at + len(taken)
            self.left -= len(taken)
        return out

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in sorted(self.next)]

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(self.topic, tp.partition, self.next.get(tp.partition, -1001))
            for tp in tps
        ]

    def seek(self, tp: TopicPartition) -> None:
        """Sought back, a wedged fetcher stays wedged (a new consumer is what resumes it)."""
        self.sought.append(tp)

    def close(self) -> None:
        self.closed = True
