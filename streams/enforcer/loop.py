"""The enforcer's Kafka shell: a batched consume-transform-produce loop on transactions.

Per batch: ``begin_transaction`` -> decode and apply events -> fire due deadlines -> produce
changelog records, revocations, audit events and dead letters -> ``send_offsets_to_transaction``
-> ``commit_transaction``. State, outputs and input offsets commit atomically; an aborted batch
also undoes its in-memory changes and rewinds the consumer to the committed offsets.

Rebalance callbacks run inside ``consume()``, when no transaction is open: a revoked partition's
state is dropped (everything it did is committed), an assigned one is restored from the
changelog before any of its input is processed.
"""

from __future__ import annotations

import base64
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from schemas.codec import DecodeError, decode_auth_event, encode_dict
from streams.caep import caep_events_for
from streams.enforcer.core import PartitionEnforcer
from streams.enforcer.kafka_config import consumer_config, producer_config, restore_config
from streams.logsetup import SessionHasher
from streams.observe.enforcer import observer_for
from streams.policy import Policy
from streams.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Dead letters carry the original bytes base64-encoded; the producer and the DLQ topic allow
# 4 MiB records, so up to 1 MiB of key and of value always fits.
MAX_DEAD_LETTER_RAW = 1024 * 1024
GC_GEN0_THRESHOLD = 50_000
LEADERSHIP_ERRORS = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    }
)
CAEP_TYPES = frozenset({"revocation", "revalidation", "session_started"})


def _error_fields(err: KafkaError | object) -> dict[str, Any]:
    """A Kafka error as log fields: its name (what to query on) and its text."""
    if isinstance(err, KafkaError):
        return {"error": err.name(), "detail": err.str(), "retriable": err.retriable()}
    return {"error": type(err).__name__, "detail": str(err)}


def _where(msg: Message) -> dict[str, Any]:
    return {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}


@dataclass
class PartitionRuntime:
    """An owned input partition: its enforcer and how far its input has been read."""

    enforcer: PartitionEnforcer
    next_offset: int = 0  # offset of the next input record to process
    position: int = 0  # the consumer's position (moves past transaction markers too)
    probe: tuple[float, int] | None = None  # (time, high watermark) not yet read up to


@dataclass
class LoopStats:
    events: int = 0
    dead_letters: int = 0
    batches: int = 0
    aborts: int = 0
    restored_records: int = 0
    last_restore_s: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)


class EnforcerLoop:
    """Owns a consumer, a transactional producer and one PartitionEnforcer per partition."""

    def __init__(self, settings: Settings, policy: Policy, clock: Clock = time.time) -> None:
        # Wall clock on purpose: deadlines are enforced in real time, even on silent partitions.
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.topics = settings.topics
        self.parts: dict[int, PartitionRuntime] = {}
        self.stats = LoopStats()
        self.session_hash = SessionHasher(settings.log_salt)
        self._consumer = Consumer(consumer_config(settings))
        self._producer = Producer(producer_config(settings))
        self._restorer = Consumer(restore_config(settings))
        self._caep = settings.caep_config()
        self._admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, "log_level": 4})
        self._stop = threading.Event()
        self._in_txn = False
        self._pending_dlq = 0  # dead letters produced in the open transaction
        self.metrics = observer_for(settings, self.topics.input)

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Process until ``stop()``; then finish the open batch, leave the group, flush."""
        self.start()
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            self.close()

    def start(self) -> None:
        """Fence any predecessor with our transactional id and join the group."""
        # Each batch allocates hundreds of thousands of short-lived objects; with the default
        # gen-0 threshold (700) the collector runs every few events and walks the session
        # heap far too often (measured: 1.65x throughput at 50k, bench/enforcer_drain.py).
        gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
        self.metrics.start()
        self._producer.init_transactions(30)
        self._consumer.subscribe(
            [self.topics.input],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info(
            "enforcer started",
            extra={
                "transactional_id": self.settings.transactional_id,
                "policy_version": self.policy.version,
            },
        )

    def close(self) -> None:
        if self._in_txn:
            self._abort()
        self._consumer.close()
        self._restorer.close()
        self._producer.flush(10)
        self.metrics.close()
        log.info("enforcer stopped", extra={"events": self.stats.events})

    # -- one batch ------------------------------------------------------------------------

    def step(self) -> int:
        """Consume one batch and commit it with everything that became due. Returns events."""
        started = self.metrics.step()
        self._probe_ahead()
        msgs = self._consumer.consume(self.settings.batch_size, self.settings.poll_timeout_s)
        now = self.clock()
        if not self.parts:
            return 0
        self._producer.begin_transaction()
        self._in_txn = True
        for rt in self.parts.values():
            rt.enforcer.begin()
        try:
            offsets = self._apply(msgs, now)
            self._fire_due(now)
            produced = self._produce_outputs()
            committing = time.monotonic()
            if offsets:
                self._producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), 30
                )
            if produced or offsets:
                self._producer.commit_transaction(30)
                self.metrics.committed(committing)
            else:
                self._producer.abort_transaction(30)  # nothing happened: nothing to commit
            self._in_txn = False
        except KafkaException as exc:
            self._handle_txn_error(exc)
            return 0
        self.stats.batches += 1
        self._after_commit()
        self.metrics.batch_done(len(msgs), started, self.parts, self._consumer)
        return len(msgs)

    def _apply(self, msgs: list[Message], now: float) -> list[TopicPartition]:
        last: dict[int, int] = {}
        topic = self.topics.input
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra=_error_fields(err))
                continue
            p = msg.partition()
            rt = self.parts.get(p)
            if rt is None:  # not ours any more (revoked inside this consume call)
                continue
            offset = msg.offset()
            last[p] = offset
            value = msg.value()
            try:
                event = decode_auth_event(value)
            except DecodeError as exc:
                self._dead_letter(exc.reason, exc.detail, msg)
                continue
            try:
                reject = self.metrics.apply(rt.enforcer, event, now)
            except Exception as exc:  # a bug must not stop enforcement for everyone else
                log.exception("internal error applying an event", extra=_where(msg))
                self._dead_letter("internal_error", f"{type(exc).__name__}: {exc}", msg)
                continue
            if reject is not None:
                self._dead_letter("future_timestamp", reject, msg)
        self.stats.events += len(msgs)
        offsets = []
        for p, off in last.items():
            self.parts[p].next_offset = off + 1
            offsets.append(TopicPartition(topic, p, off + 1))
        return offsets

    def _refresh_positions(self) -> None:
        tps = [TopicPartition(self.topics.input, p) for p in self.parts]
        for tp in self._consumer.position(tps):
            if tp.offset >= 0 and tp.partition in self.parts:
                self.parts[tp.partition].position = tp.offset

    def _fire_due(self, now: float) -> None:
        """End every session whose deadline has passed and whose partition is known to be read
        past it (see _safe_horizon); then drop expired ended-session markers."""
        self._refresh_positions()
        horizons: dict[int, float] = {}
        unproven: list[int] = []
        for p, rt in self.parts.items():
            due = rt.enforcer.due_by(now)
            if due is not None:
                horizons[p] = self._safe_horizon(rt, now)
                if horizons[p] < due and rt.probe is None:
                    unproven.append(p)
        if unproven:
            self._probe(unproven, now, horizons)
        # Bounded per batch: a mass expiry (every session of a burst of logins) is spread over
        # several transactions instead of one that outgrows the producer's queue.
        limit = max(1, self.settings.batch_size // max(1, len(horizons)))
        for p, horizon in horizons.items():
            self.parts[p].enforcer.fire_due(horizon, now, limit)
        for rt in self.parts.values():
            rt.enforcer.forget_expired(now)

    def _safe_horizon(self, rt: PartitionRuntime, now: float) -> float:
        """How far deadlines may fire on a partition without trusting unread input.

        A deadline fires only once the partition is known to be read past it. Two proofs:
        the latest event time read on the partition is past it by the grace (a backlog is being
        read), or a high-watermark probe taken at time t has since been consumed past, so every
        record produced before t has been read and deadlines up to t are safe.
        """
        horizon = min(now, rt.enforcer.event_watermark - self.settings.lag_grace_s)
        if rt.probe is not None and max(rt.next_offset, rt.position) >= rt.probe[1]:
            horizon = max(horizon, min(rt.probe[0], now))
            rt.probe = None
        return horizon

    def _probe_ahead(self) -> None:
        """Probe partitions with due deadlines before consuming: the batch about to be read can
        then prove them, and they fire in this transaction rather than the next."""
        now = self.clock()
        due = [
            p
            for p, rt in self.parts.items()
            if rt.probe is None and rt.enforcer.due_by(now) is not None
        ]
        if due:
            self._probe(due, now, None)

    def _probe(self, partitions: list[int], now: float, horizons: dict[int, float] | None) -> None:
        """Ask the broker for the last stable offsets (one round trip, never a cached value:
        that can be stale for a partition just assigned)."""
        taken = self.clock()
        specs = {TopicPartition(self.topics.input, p): OffsetSpec.latest() for p in partitions}
        try:
            futures = self._admin.list_offsets(
                specs, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=5
            )
            ends = {tp.partition: f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            log.warning("last-stable-offset probe failed", extra=_error_fields(exc.args[0]))
            return
        for p, end in ends.items():
            rt = self.parts[p]
            if horizons is not None and max(rt.next_offset, rt.position) >= end:
                horizons[p] = max(horizons[p], min(taken, now))
            else:
                rt.probe = (taken, end)  # proven once the consumer has read up to `end`

    def _produce(
        self, topic: str, value: bytes | None, key: str | bytes | None, partition: int = -1
    ) -> None:
        """Produce, waiting for room when the local queue is full (deliveries free it)."""
        while True:
            try:
                self._producer.produce(topic, value, key, partition=partition)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _produce_outputs(self) -> int:
        produce = self._produce
        topics = {"revocations": self.topics.revocations, "audit": self.topics.audit}
        state_topic = self.topics.enforcer_state
        count = 0
        for p, rt in self.parts.items():
            for key, value in rt.enforcer.changelog():
                produce(state_topic, value, key, partition=p)
                count += 1
            for emit in rt.enforcer.out:
                produce(topics[emit.topic], encode_dict(emit.value), emit.key)
                count += 1
                if self._caep is not None and emit.value["type"] in CAEP_TYPES:
                    for caep_key, token in caep_events_for(emit.value, self._caep):
                        produce(self.topics.caep, token, caep_key)
                        count += 1
        return count + self._pending_dlq

    def _after_commit(self) -> None:
        self._pending_dlq = 0
        for rt in self.parts.values():
            rt.enforcer.commit()
            for emit in rt.enforcer.take_outputs():
                kind = emit.value["type"]
                if kind == "revocation":
                    reason = emit.value["reason"]
                    self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
                    self.metrics.revoked(emit.value)
                elif kind in ("session_started", "session_ended"):
                    self._log_lifecycle(emit.value)
        self._producer.poll(0)

    def _log_lifecycle(self, doc: dict[str, Any]) -> None:
        extra: dict[str, Any] = {
            "event": doc["type"],
            "session": self.session_hash(doc["session_id"]),
            "user_id": doc["user_id"],
            "tenant": doc["tenant"],
        }
        if doc["type"] == "session_ended":
            extra["reason"] = doc["reason"]
            extra["duration_s"] = round(doc["duration_s"], 3)
        else:
            extra["user_type"] = doc["user_type"]
            extra["risk_profile"] = doc["risk_profile"]
        log.info(doc["type"].replace("_", " "), extra=extra)

    def _dead_letter(self, reason: str, detail: str, msg: Message) -> None:
        key = msg.key()
        value = msg.value() or b""
        if len(value) > MAX_DEAD_LETTER_RAW:  # keep the record producible: the head is evidence
            detail = f"{detail} (original {len(value)} bytes, first {MAX_DEAD_LETTER_RAW} kept)"
            value = value[:MAX_DEAD_LETTER_RAW]
        if key is not None and len(key) > MAX_DEAD_LETTER_RAW:
            key = key[:MAX_DEAD_LETTER_RAW]
        doc = {
            "type": "dead_letter",
            "schema_version": 1,
            "reason": reason,
            "detail": detail[:2048],
            "source_topic": msg.topic(),
            "source_partition": msg.partition(),
            "source_offset": msg.offset(),
            "key_b64": base64.b64encode(key).decode() if key is not None else None,
            "value_b64": base64.b64encode(value).decode(),
            "dead_lettered_at": datetime.fromtimestamp(self.clock(), UTC),
        }
        self._produce(self.topics.dlq, encode_dict(doc), key)
        self._pending_dlq += 1
        self.stats.dead_letters += 1
        self.metrics.dead_lettered(reason)
        log.warning("dead-lettered", extra={**_where(msg), "reason": reason})

    # -- failures -------------------------------------------------------------------------

    def _handle_txn_error(self, exc: KafkaException) -> None:
        err: KafkaError = exc.args[0]
        self.metrics.aborted(err.name())
        if err.fatal():
            log.error("fatal transactional error, exiting", extra=_error_fields(err))
            self._in_txn = False
            for rt in self.parts.values():
                rt.enforcer.abort()
            raise exc
        log.warning("transaction failed, aborting the batch", extra=_error_fields(err))
        self._abort()

    def _abort(self) -> None:
        """Abort the open transaction, undo its in-memory changes, rewind to committed offsets."""
        try:
            self._producer.abort_transaction(30)
        except KafkaException as exc:
            log.error("abort_transaction failed", extra=_error_fields(exc.args[0]))
        self._in_txn = False
        self._pending_dlq = 0
        self.stats.aborts += 1
        for rt in self.parts.values():
            rt.enforcer.abort()
        self._rewind(list(self.parts))

    def _rewind(self, partitions: list[int]) -> None:
        if not partitions:
            return
        tps = [TopicPartition(self.topics.input, p) for p in partitions]
        for tp in self._consumer.committed(tps, 30):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            self.parts[tp.partition].next_offset = max(tp.offset, 0)

    # -- rebalance ------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        started = time.monotonic()
        self.metrics.restore_begin()
        committed = consumer.committed(partitions, 30) if partitions else []
        fresh: dict[int, PartitionRuntime] = {}
        for tp in committed:
            rt = PartitionRuntime(PartitionEnforcer(self.policy, tp.partition))
            rt.next_offset = tp.offset if tp.offset != OFFSET_INVALID else 0
            fresh[tp.partition] = rt
        self._restore({p: rt.enforcer for p, rt in fresh.items()})
        self.parts.update(fresh)
        self.stats.last_restore_s = time.monotonic() - started
        self.metrics.restore_end(self.stats)
        if partitions:
            log.info(
                "partitions assigned and restored",
                extra={
                    "partitions": sorted(tp.partition for tp in partitions),
                    "live_sessions": sum(rt.enforcer.live_sessions() for rt in self.parts.values()),
                    "restore_s": round(self.stats.last_restore_s, 3),
                },
            )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.parts.pop(tp.partition, None)
        if partitions:
            log.info(
                "partitions revoked",
                extra={"partitions": sorted(tp.partition for tp in partitions)},
            )

    def _changelog_bounds(self, tp: TopicPartition, timeout: float = 30.0) -> tuple[int, int]:
        """Low and high watermark, retrying while the partition's leader is being elected."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                low, high = self._restorer.get_watermark_offsets(tp, timeout=timeout)
                return int(low), int(high)
            except KafkaException as exc:
                err = exc.args[0]
                retry = err.retriable() or err.code() in LEADERSHIP_ERRORS
                if not retry or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _restore(self, enforcers: dict[int, PartitionEnforcer]) -> None:
        """Read the changelog partitions of newly assigned input partitions from the beginning
        to their end (read_committed), all at once. Stalls while a dead instance's transaction
        on them is open: ``transaction.timeout.ms`` bounds that."""
        topic = self.topics.enforcer_state
        ends: dict[int, int] = {}
        for p in enforcers:
            low, high = self._changelog_bounds(TopicPartition(topic, p))
            if high > low:
                ends[p] = high
        if ends:
            self._restorer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            while ends:
                for msg in self._restorer.consume(10_000, 0.1):
                    if msg.error() is not None:
                        continue
                    key = msg.key()
                    enforcers[msg.partition()].restore(
                        key.decode() if key is not None else "", msg.value()
                    )
                    self.stats.restored_records += 1
                tps = [TopicPartition(topic, p) for p in ends]
                for tp in self._restorer.position(tps):
                    if tp.offset >= ends[tp.partition]:
                        del ends[tp.partition]
            self._restorer.unassign()
        for enforcer in enforcers.values():
            enforcer.finish_restore()
