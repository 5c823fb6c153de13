"""Fake Kafka clients the enforcer's loop tests share."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition


class FakeCommandsConsumer:
    """The operator commands reader's consumer: no commands."""

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        return []

    def assignment(self) -> list[TopicPartition]:
        return []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return partitions

    def close(self) -> None:
        pass
