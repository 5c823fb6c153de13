"""The CAEP transmitter: signs Security Event Tokens outside the enforcer's transactions.

Signing is slow (RS256 with a 2048-bit key: about 0.35 ms a token; bench/caep_signing.py): a
mass expiry of one full batch (5000 revocations) with three audiences is 15,000 signatures,
5 s with RSA 2048 and 20 s with RSA 3072, so inside a transaction it could push the commit
past ``transaction.timeout.ms`` and have the broker abort the batch. Instead the enforcer
commits its records without any token, and this transmitter reads the committed
revocations and audit records (read_committed) in its own consumer group
(``<group_id>-caep``), signs, produces the tokens (idempotent, acks=all) and commits its
offsets once they are delivered.

At least once: after a crash a token may be sent again; its ``jti`` is derived from the
record id, the event type and the audience, so receivers drop the duplicate. Tokens of one
session keep their order per topic; across the revocation and audit topics they are ordered
by their ``event_timestamp``, which receivers must use (as SSF asks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from confluent_kafka import Consumer, KafkaException, Message, Producer

from sessionwarden.caep.events import CaepConfig, caep_events_for
from sessionwarden.config.settings import Settings
from sessionwarden.kafka.security import client_config
from sessionwarden.kafka.stall import AdminEnds, EndsProbe, SeekableConsumer, StallWatch
from sessionwarden.ops.logs import error_fields
from sessionwarden.ssf.causes import SESSION_RECORD_TYPES
from sessionwarden.ssf.tokens import SetError

log = logging.getLogger(__name__)

CAEP_TYPES = SESSION_RECORD_TYPES
_BATCH = 500


class ConsumerLike(SeekableConsumer, Protocol):
    def subscribe(self, topics: list[str]) -> None: ...
    def consume(self, num_messages: int, timeout: float) -> list[Message]: ...
    def commit(self, *, asynchronous: bool) -> Any: ...
    def close(self) -> None: ...


class ProducerLike(Protocol):
    def produce(
        self, topic: str, value: bytes, key: bytes, *, on_delivery: Callable[[Any, Any], None]
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...


def transmitter_group(settings: Settings) -> str:
    return f"{settings.enforcer.group_id}-caep"


class CaepTransmitter:
    """Reads committed revocations and audit records, writes signed SETs; see the module."""

    def __init__(
        self,
        settings: Settings,
        config: CaepConfig,
        consumer_factory: Callable[[dict[str, Any]], ConsumerLike] = Consumer,
        producer_factory: Callable[[dict[str, Any]], ProducerLike] = Producer,
        ends: EndsProbe | None = None,
    ) -> None:
        """``ends``: where the watch of the consumer asks the end offsets (an admin client of
        its own by default; kafka.stall)."""
        self.config = config
        self.topics = settings.topics
        self.sent = 0
        self.skipped = 0
        self.reopened = 0  # consumers that stopped fetching, reopened (kafka.stall)
        self._stall_s = settings.kafka.fetch_stall_s
        client = client_config(settings.kafka)
        self._ends = ends or AdminEnds.of(client)
        self._consumer_factory = consumer_factory
        self._consumer_config = {
            **client,
            "group.id": transmitter_group(settings),
            "client.id": f"sessionwarden-caep-{settings.enforcer.instance_id}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log_level": 4,
        }
        self._consumer = consumer_factory(self._consumer_config)
        self._producer = producer_factory(
            {**client, "enable.idempotence": True, "acks": "all", "linger.ms": 5, "log_level": 4}
        )
        self._failed: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> CaepTransmitter | None:
        """A transmitter when CAEP is on, else None."""
        config = CaepConfig.from_settings(settings)
        return None if config is None else cls(settings, config)

    def start(self) -> None:
        if self.config.signing_key_pem is None:
            log.warning(
                "CAEP tokens are UNSIGNED (caep_allow_unsigned): for development only; "
                "receivers cannot tell them from forgeries"
            )
        if self.config.raw_session_audiences:
            log.warning(
                "CAEP audiences receive RAW session ids (caep_raw_session_audiences): anyone "
                "who reads their tokens can use a live session",
                extra={"audiences": sorted(self.config.raw_session_audiences)},
            )
        self._consumer.subscribe([self.topics.revocations, self.topics.audit])
        self._thread = threading.Thread(target=self._run, name="sessionwarden-caep", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._producer.flush(timeout)
        self._consumer.close()

    def _run(self) -> None:
        watch = StallWatch(self._stall_s, self._ends)
        while not self._stop.is_set():
            try:
                self.step()
                # Every batch read is committed by now: the new consumer resumes after it.
                if watch.tend(
                    self._consumer,
                    lambda _: self._reopen(pause_s=0.0),
                    "the CAEP transmitter's Kafka consumer stopped fetching with records"
                    " waiting: reopened at the committed offsets",
                ):
                    self.reopened += 1
            except KafkaException as exc:
                # Start over from the committed offsets: the batch is signed and sent again
                # (same jti), never skipped.
                log.error(
                    "CAEP transmitter failed, resuming from the last committed batch",
                    extra=error_fields(exc),
                )
                self._failed.clear()
                self._reopen(pause_s=1.0)
            except Exception:
                log.exception("the CAEP transmitter stopped: no further tokens are sent")
                return

    def _reopen(self, pause_s: float) -> None:
        """A new consumer in the group, from the committed offsets."""
        self._consumer.close()
        self._stop.wait(pause_s)
        self._consumer = self._consumer_factory(self._consumer_config)
        self._consumer.subscribe([self.topics.revocations, self.topics.audit])

    def step(self, timeout: float = 0.2) -> int:
        """Sign and send the tokens of one batch of records, then commit it. Returns tokens."""
        msgs = self._consumer.consume(_BATCH, timeout)
        sent = 0
        for msg in msgs:
            if msg.error() is not None or msg.value() is None:
                continue
            sent += self._transmit(msg.value())
        if msgs:
            if self._producer.flush(30) != 0 or self._failed:
                why = self._failed[0] if self._failed else "not delivered within 30 s"
                raise KafkaException(f"CAEP tokens of a batch failed: {why}")
            self._consumer.commit(asynchronous=False)
        self.sent += sent
        return sent

    def _transmit(self, value: bytes) -> int:
        try:
            record = orjson.loads(value)
            if not isinstance(record, dict) or record.get("type") not in CAEP_TYPES:
                return 0
            tokens = caep_events_for(record, self.config)
        except (orjson.JSONDecodeError, SetError) as exc:
            self.skipped += 1
            log.warning("no CAEP token for a record", extra=error_fields(exc))
            return 0
        for key, token in tokens:
            while True:
                try:
                    self._producer.produce(
                        self.topics.caep, token, key, on_delivery=self._delivered
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
        return len(tokens)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))
