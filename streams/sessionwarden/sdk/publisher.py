"""Publishing auth events: validated, encoded with the codec, keyed by user_id, murmur2.

Two front ends over the same producer settings:

* :class:`AuthEventPublisher` for synchronous code: ``publish()`` queues, ``flush()`` waits and
  raises :class:`DeliveryError` for anything the broker did not accept.
* :class:`AsyncAuthEventPublisher` for asyncio code: ``await publish()`` returns once the broker
  has acknowledged the event (or raises), without ever blocking the event loop. Delivery reports
  are served by a small thread; results come back to the loop through
  ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from pydantic import BaseModel

from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.inputs import AUTH_EVENT_ADAPTER, AuthEvent
from sessionwarden.errors import SessionwardenError
from sessionwarden.kafka.producing import produce_waiting
from sessionwarden.kafka.topics import INPUT_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

_QUEUE_FULL_BACKOFF_S = 0.05
_POLL_INTERVAL_S = 0.1


class DeliveryError(SessionwardenError):
    """The broker did not accept an event."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the broker stored an acknowledged event."""

    topic: str
    partition: int
    offset: int


def producer_config(bootstrap_servers: str, **config: Any) -> dict[str, Any]:
    """Idempotent, acks=all, murmur2 (the Java and aiokafka default), so every producer maps a
    user_id to the same partition. ``config`` overrides or extends (librdkafka names)."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "partitioner": "murmur2_random",
        # auth.events refuses batches over its max.message.bytes (the decoder's limit).
        "batch.size": INPUT_MAX_MESSAGE_BYTES,
        "log_level": 4,
        **config,
    }


def to_wire(event: AuthEvent | dict[str, Any]) -> tuple[bytes, bytes]:
    """Validate (dicts are parsed with the strict schema) and return ``(key, value)`` bytes."""
    model = event if isinstance(event, BaseModel) else AUTH_EVENT_ADAPTER.validate_python(event)
    return model.user_id.encode(), encode(model)


def _failure_text(err: KafkaError, msg: Message) -> str:
    return f"{msg.topic()}[{msg.partition()}]: {err.str()}"


class AuthEventPublisher:
    """An idempotent acks=all producer of auth events onto the input topic.

    Keys are user_ids and the partitioner is murmur2, as in the Java and aiokafka producers, so
    every producer maps a user to the same partition. Delivery failures are collected and raised
    by ``flush()``.
    """

    def __init__(self, bootstrap_servers: str, topic: str, **config: Any) -> None:
        self.topic = topic
        self._errors: list[str] = []
        self._producer = Producer(producer_config(bootstrap_servers, **config))

    def publish(self, event: AuthEvent | dict[str, Any]) -> None:
        """Validate (dicts are parsed with the strict schema) and queue one event."""
        self.publish_raw(*to_wire(event))

    def publish_raw(self, key: bytes | None, value: bytes) -> None:
        """Queue bytes as they are (tests use it for hostile input)."""
        produce_waiting(
            self._producer, self.topic, value, key, on_delivery=self._on_delivery, wait_s=0.1
        )
        self._producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(_failure_text(err, msg))

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


class AsyncAuthEventPublisher:
    """The asyncio face of the publisher: ``await publish(event)`` returns its :class:`Delivery`.

    Use it as ``async with AsyncAuthEventPublisher(servers, topic) as pub:``. Nothing here blocks
    the event loop: a full local queue is waited out with ``asyncio.sleep``, and ``close()``
    flushes in the default executor. Awaiting many publishes at once (``asyncio.gather``) keeps
    librdkafka's batching; each await resolves when its own event is acknowledged.
    """

    def __init__(self, bootstrap_servers: str, topic: str, **config: Any) -> None:
        self.topic = topic
        self._producer = Producer(producer_config(bootstrap_servers, **config))
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._closed = False

    async def start(self) -> None:
        """Start serving delivery reports (``publish`` calls this on first use)."""
        if self._poller is None:
            self._poller = threading.Thread(
                target=self._serve_reports, name="sessionwarden-publisher-reports", daemon=True
            )
            self._poller.start()

    def _serve_reports(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(_POLL_INTERVAL_S)

    async def publish(self, event: AuthEvent | dict[str, Any]) -> Delivery:
        """Validate, send and wait for the broker's acknowledgement; raises DeliveryError."""
        return await self.publish_raw(*to_wire(event))

    async def publish_raw(self, key: bytes | None, value: bytes) -> Delivery:
        """Send bytes as they are and wait for the broker's acknowledgement."""
        if self._closed:
            raise DeliveryError("publisher is closed")
        await self.start()
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Delivery] = loop.create_future()

        def settle(err: KafkaError | None, msg: Message) -> None:  # runs on the report thread
            try:
                if err is not None:
                    failure = DeliveryError(f"delivery failed: {_failure_text(err, msg)}")
                    loop.call_soon_threadsafe(_set_exception, result, failure)
                else:
                    done = Delivery(msg.topic(), msg.partition(), msg.offset())
                    loop.call_soon_threadsafe(_set_result, result, done)
            except RuntimeError:  # the loop is closed: nobody is waiting for this report
                log.debug(
                    "delivery report arrived after its event loop closed",
                    extra={"topic": msg.topic()},
                )

        while True:
            try:
                self._producer.produce(self.topic, value, key, on_delivery=settle)
                break
            except BufferError:  # local queue full: the report thread is draining it
                await asyncio.sleep(_QUEUE_FULL_BACKOFF_S)
        return await result

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued event is acknowledged or failed (failures raise at their
        own ``publish`` await); raises DeliveryError if some are still queued at the timeout."""
        remaining = await asyncio.get_running_loop().run_in_executor(
            None, self._producer.flush, timeout
        )
        if remaining:
            raise DeliveryError(f"{remaining} event(s) still undelivered after {timeout:g}s")

    async def close(self, timeout: float = 30.0, strict: bool = True) -> None:
        """Flush, then stop the report thread. Idempotent. With ``strict`` (the default) events
        still queued at the timeout raise DeliveryError; otherwise they are only logged."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.flush(timeout)
        except DeliveryError:
            if strict:
                raise
            log.warning(
                "closing the publisher with events undelivered", extra={"topic": self.topic}
            )
        finally:
            self._stop.set()
            if self._poller is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._poller.join, 5.0)

    async def __aenter__(self) -> AsyncAuthEventPublisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:  # do not mask the exception that is already propagating
            await self.close(5.0, strict=False)


def _set_result(future: asyncio.Future[Delivery], value: Delivery) -> None:
    if not future.done():  # the awaiting task may have been cancelled meanwhile
        future.set_result(value)


def _set_exception(future: asyncio.Future[Delivery], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
