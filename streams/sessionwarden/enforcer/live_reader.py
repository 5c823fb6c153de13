"""Reads the enforcer's changelog (read_committed) to its committed end into a LiveView.

No enforcer process is asked and none is needed: the changelog topic is the enforcer's
committed state, partition by partition. Every partition is read from its start until the
consumer reports its end (with read_committed, the last stable offset: a transaction still
open is not waited for and not seen), within a bounded time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.engine.live import Listing, LiveView
from sessionwarden.errors import SessionwardenError
from sessionwarden.kafka.security import KafkaSecurity
from sessionwarden.policy import Policy

BATCH = 10_000


class ViewUnavailable(SessionwardenError):
    """The changelog cannot be read to its end: the message says why (never a session id)."""


def read_live_sessions(
    settings: Settings,
    tenant: str,
    user_id: str | None = None,
    policy: Policy | None = None,
    timeout: float = 30.0,
    consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
) -> Listing:
    """The live sessions of ``tenant`` (of ``user_id`` only, when given) in the enforcer's
    committed state. Raises ViewUnavailable when the broker cannot be reached, the changelog
    topic is missing or not readable, or its end is not reached within ``timeout`` seconds."""
    topic = settings.topics.enforcer_state
    deadline = time.monotonic() + timeout
    consumer = consumer_factory(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            **KafkaSecurity.from_settings(settings.kafka).librdkafka(),
            "group.id": f"sessionwarden-sessions-{uuid.uuid4().hex[:8]}",  # never committed
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 0,  # what fails is raised as ViewUnavailable, in one line
        }
    )
    try:
        partitions = _partitions(consumer, settings, topic, min(timeout, 10.0))
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        view = LiveView(tenant, user_id, policy)
        reading = set(partitions)
        while reading:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ViewUnavailable(
                    f"changelog {topic} not read to its end within {timeout:g} s "
                    f"({len(reading)} of {len(partitions)} partitions left, "
                    f"{view.records} records read)"
                )
            for msg in consumer.consume(BATCH, min(left, 0.5)):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        reading.discard(msg.partition())
                    elif err.fatal() or not err.retriable():
                        raise ViewUnavailable(f"changelog {topic}: {err.str()}")
                    continue
                key = msg.key()
                view.add(msg.partition(), key.decode() if key is not None else "", msg.value())
        return view.listing()
    finally:
        consumer.close()


def _partitions(consumer: Consumer, settings: Settings, topic: str, timeout: float) -> list[int]:
    try:
        md = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise ViewUnavailable(
            f"cannot reach Kafka at {settings.kafka.bootstrap_servers} within {timeout:g} s "
            f"({exc.args[0].str()})"
        ) from None
    found = md.topics.get(topic)
    if found is None or found.error is not None:
        why = found.error.str() if found is not None else "not in the metadata"
        if found is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            why = "no such topic (has an enforcer run with these topic settings?)"
        raise ViewUnavailable(f"changelog {topic}: {why}")
    if not found.partitions:
        raise ViewUnavailable(f"changelog {topic}: no partitions")
    return sorted(found.partitions)
