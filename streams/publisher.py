"""Publishing auth events: validated, encoded with the codec, keyed by user_id, murmur2."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from pydantic import BaseModel

from schemas.codec import encode
from schemas.errors import SessionwardenError
from schemas.inputs import AUTH_EVENT_ADAPTER, AuthEvent

log = logging.getLogger(__name__)


class DeliveryError(SessionwardenError):
    """The broker did not accept an event."""


class AuthEventPublisher:
    """An idempotent acks=all producer of auth events onto the input topic.

    Keys are user_ids and the partitioner is murmur2, as in the Java and aiokafka producers, so
    every producer maps a user to the same partition. Delivery failures are collected and raised
    by ``flush()``.
    """

    def __init__(self, bootstrap_servers: str, topic: str, **config: Any) -> None:
        self.topic = topic
        self._errors: list[str] = []
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "partitioner": "murmur2_random",
                "log_level": 4,
                **config,
            }
        )

    def publish(self, event: AuthEvent | dict[str, Any]) -> None:
        """Validate (dicts are parsed with the strict schema) and queue one event."""
        model = event if isinstance(event, BaseModel) else AUTH_EVENT_ADAPTER.validate_python(event)
        self.publish_raw(model.user_id.encode(), encode(model))

    def publish_raw(self, key: bytes | None, value: bytes) -> None:
        """Queue bytes as they are (tests use it for hostile input)."""
        while True:
            try:
                self._producer.produce(self.topic, value, key, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        if remaining:
            self._errors.append(f"{remaining} event(s) still undelivered after {timeout:g}s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryError("delivery failed: " + "; ".join(errors[:5]))

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> AuthEventPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._producer.flush(5)
