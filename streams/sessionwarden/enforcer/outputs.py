"""What a batch produces besides its offsets: changelog records, revocations, audit events,
dead letters and forwarded wrong-partition records; and the bookkeeping once the batch
committed. Driven by the batch that owns the transaction (batch.py)."""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

from confluent_kafka import KafkaException, Message, Producer

from sessionwarden.contracts.codec import encode_dict
from sessionwarden.enforcer.context import EnforcerContext
from sessionwarden.enforcer.deadletter import MAX_DEAD_LETTER_KEY, dead_letter_doc
from sessionwarden.enforcer.engine.forward import HINT, Router, producer_identity
from sessionwarden.enforcer.engine.partition import Emit
from sessionwarden.enforcer.runtime import PartitionRuntime
from sessionwarden.enforcer.txn import produce_refused
from sessionwarden.kafka.producing import DeliveryCallback, produce_waiting
from sessionwarden.ops.logs import SessionHasher

log = logging.getLogger(__name__)

DEAD_LETTER_LOG_INTERVAL_S = 10.0
"""At most one "dead-lettered" line per reason in this interval, with the count it stands for:
a flood of bad records must not become a flood of log lines (each cost more than rejecting
its record)."""
LIFECYCLE = frozenset({"session_started", "session_ended", "session_risk_changed"})
"""Audit records logged as one line each (the session named by its hash)."""


class Outputs:
    def __init__(
        self,
        ctx: EnforcerContext,
        producer: Producer,
        on_changelog: DeliveryCallback | None = None,
    ) -> None:
        """``on_changelog``: the delivery reports of changelog records (local snapshots record
        the offsets their state was written at)."""
        self._producer = producer
        self._topics = ctx.topics
        self._stats = ctx.stats
        self._session_hash = SessionHasher(ctx.settings.logging.salt)
        self._clock = ctx.clock
        self._metrics = ctx.metrics
        self._on_changelog = on_changelog
        self.pending = 0  # dead letters and forwards produced in the open transaction
        self.pending_bytes = 0  # and their size (the transaction's byte budget counts it)
        self.keep_payload = True  # False: dead letters carry hashes only (a retry alone)
        self._logged: dict[str, tuple[float, int]] = {}  # reason -> (last logged, not logged)

    def begin(self) -> None:
        self.pending = 0
        self.pending_bytes = 0

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: str | bytes | None,
        partition: int = -1,
        headers: Any = None,
    ) -> None:
        """Produce, waiting for room when the local queue is full (deliveries free it)."""
        try:
            produce_waiting(self._producer, topic, value, key, partition, headers)
        except KafkaException as exc:
            _raise_refused(exc)

    def produce_batch(self, parts: dict[int, PartitionRuntime]) -> int:
        """Produce every partition's changelog and outputs; returns records produced."""
        produce = self.produce
        topics = {"revocations": self._topics.revocations, "audit": self._topics.audit}
        state_topic = self._topics.enforcer_state
        on_changelog = self._on_changelog
        count = 0
        try:
            for p, rt in parts.items():
                for key, value in rt.enforcer.state.changelog():
                    produce_waiting(self._producer, state_topic, value, key, p, None, on_changelog)
                    count += 1
                for emit in rt.enforcer.state.out:
                    produce(topics[emit.topic], encode_dict(emit.value), emit.key)
                    count += 1
        except KafkaException as exc:
            _raise_refused(exc)
        return count + self.pending

    def forward(self, router: Router, msg: Message, key: bytes, target: int) -> None:
        """Move a record to the partition its key belongs on, inside this transaction."""
        value = msg.value()
        self.produce(self._topics.input, value, key, target, msg.headers())
        self.pending += 1
        self.pending_bytes += len(key) + (len(value) if value else 0)
        self._stats.forwarded += 1
        self._metrics.forwarded()
        producer = producer_identity(key, msg.headers())
        if router.first_from(producer):
            log.warning(
                "record on the wrong partition for its key, forwarded",
                extra={
                    "producer": producer,
                    "partition": msg.partition(),
                    "right_partition": target,
                    "hint": HINT,
                },
            )

    def dead_letter(self, reason: str, detail: str, msg: Message) -> None:
        key = msg.key()
        doc = dead_letter_doc(reason, detail, msg, self._clock(), self.keep_payload)
        value = encode_dict(doc)
        dlq_key = key[:MAX_DEAD_LETTER_KEY] if key else key
        self.produce(self._topics.dlq, value, dlq_key)
        self.pending += 1
        self.pending_bytes += len(value) + (len(dlq_key) if dlq_key else 0)
        self._stats.dead_letters += 1
        self._metrics.dead_lettered(reason)
        now = time.monotonic()
        last, unlogged = self._logged.get(reason, (-DEAD_LETTER_LOG_INTERVAL_S, 0))
        if now - last < DEAD_LETTER_LOG_INTERVAL_S:
            self._logged[reason] = (last, unlogged + 1)
            return
        self._logged[reason] = (now, 0)
        log.warning(
            "dead-lettered",
            extra={
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "reason": reason,
                "also_since_last_line": unlogged,
            },
        )

    def committed(self, emitted: list[Emit]) -> None:
        """The batch committed ``emitted``: count and log it."""
        self.pending = 0
        self.pending_bytes = 0
        self._stats.batches += 1
        by_reason = self._stats.by_reason
        for emit in emitted:
            kind = emit.value["type"]
            if kind == "revocation":
                reason = emit.value["reason"]
                by_reason[reason] = by_reason.get(reason, 0) + 1
                self._metrics.revoked(emit.value)
            elif kind in LIFECYCLE:
                self._log_lifecycle(emit.value)
        self._producer.poll(0)

    def aborted(self) -> None:
        """The batch aborted: what it produced is gone with it."""
        self.pending = 0
        self.pending_bytes = 0

    def _log_lifecycle(self, doc: dict[str, Any]) -> None:
        extra: dict[str, Any] = {
            "event": doc["type"],
            "session": self._session_hash(doc["session_id"]),
            "user_id": doc["user_id"],
            "tenant": doc["tenant"],
        }
        if doc["type"] == "session_ended":
            extra["reason"] = doc["reason"]
            extra["duration_s"] = round(doc["duration_s"], 3)
            for name in ("signal", "source"):  # an identity signal ended it
                if name in doc:
                    extra[name] = doc[name]
        elif doc["type"] == "session_risk_changed":
            extra["risk_profile_before"] = doc["risk_profile_before"]
            extra["risk_profile"] = doc["risk_profile"]
            extra["ended"] = doc["ended"]
        else:
            extra["user_type"] = doc["user_type"]
            extra["risk_profile"] = doc["risk_profile"]
        log.info(doc["type"].replace("_", " "), extra=extra)


def _raise_refused(exc: KafkaException) -> NoReturn:
    """Re-raise a refused ``produce()`` as what it calls for (``txn.produce_refused``)."""
    failure = produce_refused(exc)
    if failure is exc:
        raise exc
    raise failure from exc
