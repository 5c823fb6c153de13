"""In-memory stand-ins for the listener's Kafka consumer, its clocks and its records."""

from __future__ import annotations

import uuid
from concurrent.futures import Future
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.outputs import Revalidation, Revocation, SessionRiskChanged

TOPIC = "unit.sessionwarden.revocations"
T0 = 1_800_000_000.0
INVALID_OFFSET = -1001
LATEST = OffsetSpec.latest()


class Clock:
    """A settable clock: call it for the time, ``advance`` to move it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeMessage:
    def __init__(self, value: bytes | None, partition: int, offset: int) -> None:
        self._value, self._partition, self._offset = value, partition, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    """Consumer and admin client in one. Partitions are lists of values. ``down`` makes the
    broker unreachable, ``hanging`` leaves offset requests unanswered, ``paused`` stops delivery
    (a lagging reader) while offsets can still be asked for; ``batch`` bounds what one fetch
    (a poll and the consume after it) delivers.

    What a hung or recovering broker answers: ``invalid`` answers every offset request with
    OFFSET_INVALID (-1001) instead of failing (librdkafka's answer while the broker is frozen),
    ``invalid_partitions`` only those partitions';
    ``partition_errors`` fails those partitions' answers with the given error code; ``fenced``
    fails every offset request with FENCED_LEADER_EPOCH until an admin client is built again
    (a client whose metadata is stale); ``stuck`` stops delivery until a consumer is built
    again. ``consumers_built`` and ``admins_built`` count the factories' calls."""

    def __init__(self, partitions: int = 2) -> None:
        self.logs: dict[int, list[bytes | None]] = {p: [] for p in range(partitions)}
        self.positions = dict.fromkeys(self.logs, INVALID_OFFSET)
        self.assigned: list[TopicPartition] = []
        self.config: dict[str, Any] = {}
        self.admin_config: dict[str, Any] = {}
        self.offset_requests: list[dict[str, Any]] = []
        self.down = False
        self.hanging = False
        self.paused = False
        self.batch = 1000
        self.invalid = False
        self.invalid_partitions: set[int] = set()
        self.partition_errors: dict[int, int] = {}
        self.fenced = False
        self.stuck = False
        self.consumers_built = 0
        self.admins_built = 0
        self._available = 0
        self.closed = False

    def factory(self, config: dict[str, Any]) -> FakeConsumer:
        self.config = config
        self.consumers_built += 1
        self.stuck = False
        return self

    def append(self, value: bytes | None, partition: int = 0) -> int:
        self.logs[partition].append(value)
        return len(self.logs[partition]) - 1

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        found = SimpleNamespace(error=None, partitions=dict.fromkeys(self.logs))
        return SimpleNamespace(topics={TOPIC: found} if topic == TOPIC else {})

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Reading resumes at each partition's given offset (a logical one: from the start)."""
        self.assigned = partitions
        for tp in partitions:
            self.positions[tp.partition] = tp.offset if tp.offset >= 0 else INVALID_OFFSET

    def poll(self, timeout: float) -> FakeMessage | None:
        """Starts a new fetch: ``batch`` records are available until the next poll."""
        self._available = self.batch
        got = self.consume(1, timeout)
        return got[0] if got else None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if self.down or self.paused or self.stuck:
            return []
        out: list[FakeMessage] = []
        for p, log in self.logs.items():
            start = max(self.positions[p], 0)
            for offset in range(start, len(log)):
                if len(out) >= min(num_messages, self._available):
                    self._available -= len(out)
                    return out
                out.append(FakeMessage(log[offset], p, offset))
                self.positions[p] = offset + 1
        self._available -= len(out)
        return out

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(TOPIC, tp.partition, self.positions[tp.partition]) for tp in partitions
        ]

    def admin_factory(self, config: dict[str, Any]) -> FakeConsumer:
        self.admin_config = config
        self.admins_built += 1
        self.fenced = False
        return self

    def list_offsets(
        self, topic_partition_offsets: dict[TopicPartition, Any], **kwargs: Any
    ) -> dict[TopicPartition, Future[Any]]:
        """The admin client's call: answered at once, failed when down, never when hanging."""
        self.offset_requests.append(kwargs)
        answers: dict[TopicPartition, Future[Any]] = {}
        for tp, spec in topic_partition_offsets.items():
            future: Future[Any] = Future()
            error = self.partition_errors.get(tp.partition)
            if self.fenced:
                error = KafkaError.FENCED_LEADER_EPOCH
            if self.down:
                future.set_exception(KafkaException(KafkaError(KafkaError._TRANSPORT)))
            elif error is not None:
                future.set_exception(KafkaException(KafkaError(error)))
            elif self.invalid or tp.partition in self.invalid_partitions:
                future.set_result(SimpleNamespace(offset=INVALID_OFFSET))
            elif not self.hanging:
                end = len(self.logs[tp.partition])
                future.set_result(SimpleNamespace(offset=end if spec == LATEST else 0))
            answers[tp] = future
        return answers

    def close(self) -> None:
        self.closed = True


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def revocation(
    session_id: str, effective: float = 0.0, reason: str = "idle_timeout", **fields: Any
) -> Revocation:
    doc: dict[str, Any] = {
        "revocation_id": uuid.uuid4(),
        "session_id": session_id,
        "user_id": f"user-of-{session_id}",
        "tenant": "acme",
        "reason": reason,
        "effective_at": at(effective),
        "emitted_at": at(effective),
        "roles": ["viewer"],
        "permissions": [],
        "policy_version": "unit",
    }
    doc.update(fields)
    return Revocation(**doc)


def revalidation(session_id: str, effective: float = 0.0) -> Revalidation:
    return Revalidation(
        revalidation_id=uuid.uuid4(),
        session_id=session_id,
        user_id=f"user-of-{session_id}",
        tenant="acme",
        roles_granted=["editor"],
        roles=["viewer", "editor"],
        effective_at=at(effective),
        emitted_at=at(effective),
        policy_version="unit",
        cause_event_id=uuid.uuid4(),
    )


def wire(record: Revocation | Revalidation) -> bytes:
    return encode(record)


def session_risk_changed(
    session_id: str, effective: float = 0.0, before: str = "medium", after: str = "high"
) -> SessionRiskChanged:
    """The enforcer's audit record of a risk change that tightened ``session_id``."""
    return SessionRiskChanged(
        event_id=uuid.uuid4(),
        occurred_at=at(effective),
        user_id=f"user-of-{session_id}",
        tenant="acme",
        session_id=session_id,
        risk_profile_before=before,
        risk_profile=after,
        idle_timeout_before_s=900.0,
        idle_timeout_s=300.0,
        absolute_deadline_before=at(effective + 28800),
        absolute_deadline=at(effective + 3600),
        source="ssf:idp",
        cause_event_id=uuid.uuid4(),
    )
