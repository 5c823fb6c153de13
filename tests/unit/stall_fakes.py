"""An admin client's ``list_offsets`` over ends the test keeps: where the stall watches
(sessionwarden.kafka.stall) ask the broker, never through the consumer they watch."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
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
