"""Producing through a full local queue."""

from __future__ import annotations

from typing import Any

from sessionwarden.kafka.producing import produce_waiting


class FullQueue:
    """A producer whose queue is full for the first ``full`` attempts."""

    def __init__(self, full: int) -> None:
        self.full = full
        self.polls: list[float] = []
        self.produced: list[tuple[Any, ...]] = []

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.produced.append((topic, value, key, kwargs["partition"]))

    def poll(self, timeout: float = 0.0) -> int:
        self.polls.append(timeout)
        return 0


def test_a_full_queue_is_drained_by_polling_until_the_record_fits() -> None:
    """A burst larger than the queue must wait for deliveries, never drop or raise."""
    producer = FullQueue(full=3)

    produce_waiting(producer, "t", b"v", b"k", partition=2, wait_s=0.1)

    assert ([("t", b"v", b"k", 2)], [0.1, 0.1, 0.1]) == (producer.produced, producer.polls)
