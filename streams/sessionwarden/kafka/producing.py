"""Producing when librdkafka's local queue may be full: one helper for every producer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class ProducerLike(Protocol):
    """The part of confluent_kafka.Producer the helper uses."""

    def produce(self, topic: str, value: Any = ..., key: Any = ..., **kwargs: Any) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...


def produce_waiting(
    producer: ProducerLike,
    topic: str,
    value: bytes | None,
    key: str | bytes | None = None,
    partition: int = -1,
    headers: Any = None,
    on_delivery: DeliveryCallback | None = None,
    wait_s: float = 0.05,
) -> None:
    """``producer.produce``, waiting for room while the local queue is full (BufferError):
    serving delivery reports for ``wait_s`` frees it."""
    while True:
        try:
            producer.produce(
                topic, value, key, partition=partition, headers=headers, on_delivery=on_delivery
            )
            return
        except BufferError:
            producer.poll(wait_s)
