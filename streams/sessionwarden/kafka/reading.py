"""Reading a topic from the start (or the end) as a plain iterator of committed records: for
the operators' commands (`sessionwarden tail`, `sessionwarden verify`) and the demo."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from sessionwarden.errors import SessionwardenError


class TopicUnavailable(SessionwardenError):
    """The topic cannot be read: unknown, or this principal is not allowed to describe it."""


def read_topic(
    bootstrap_servers: str,
    topic: str,
    from_beginning: bool = True,
    timeout: float | None = None,
    stop: Callable[[], bool] = lambda: False,
    **config: Any,
) -> Iterator[tuple[bytes | None, bytes]]:
    """Yield (key, value) of committed records of every partition; ends after `timeout` s idle.
    ``config`` extends the consumer's librdkafka properties (security settings). Raises
    TopicUnavailable when the topic's metadata carries an error."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"sessionwarden-tail-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "log_level": 3,
            **config,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        if md.topics[topic].error is not None:
            raise TopicUnavailable(f"topic {topic}: {md.topics[topic].error.str()}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in md.topics[topic].partitions])
        idle_since = time.monotonic()
        while not stop():
            msgs = consumer.consume(500, 0.2)
            if not msgs and timeout is not None and time.monotonic() - idle_since > timeout:
                return
            for msg in msgs:
                if msg.error() is None and msg.value() is not None:
                    idle_since = time.monotonic()
                    yield msg.key(), msg.value()
    finally:
        consumer.close()
