"""From the revocation topic into the streams' queues: the Kafka side of the transmitter.

Reads committed revocations and revalidations (read_committed, its own consumer group), makes
each stream's SET for each (a stream that is disabled, did not request the event, or whose
subjects do not match gets none), queues them all in one SQLite transaction, and only then
commits the batch's Kafka offsets. A crash between the two reads the batch again; the store's
``(stream_id, jti)`` key drops what was already queued. A record older than a stream's
retention gives that stream no SET (a new consumer group starts from the earliest record).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.kafka.security import client_config
from sessionwarden.kafka.stall import AdminEnds, EndsProbe, SeekableConsumer, Stall, StallWatch
from sessionwarden.ops.logs import error_fields
from sessionwarden.ssf.causes import cause_of
from sessionwarden.ssf.tokens import SetError
from sessionwarden.ssf.transmitter.sets import SetMaker, subject_matches
from sessionwarden.ssf.transmitter.store import Store
from sessionwarden.ssf.transmitter.streams import keeps, retention_of

log = logging.getLogger(__name__)

RECORD_TYPES = frozenset({"revocation", "revalidation"})
_BATCH = 500
_WAIT_S = 0.05
"""How long one consume waits for a full batch: librdkafka's batch consume waits this long
unless the batch fills, and revocations trickle; 50 ms bounds the delay it adds."""
_EXPIRE_EVERY_S = 10.0


class ConsumerLike(SeekableConsumer, Protocol):
    def subscribe(self, topics: list[str], on_assign: Any = ...) -> None: ...
    def consume(self, num_messages: int, timeout: float) -> list[Message]: ...
    def commit(self, *, asynchronous: bool) -> Any: ...
    def close(self) -> None: ...


def ingest_group(settings: Settings) -> str:
    return settings.ssf_transmitter.group_id or f"{settings.enforcer.group_id}-ssf"


class Ingest:
    """The reader thread; ``step`` is one batch (the tests drive it directly)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        maker: SetMaker,
        clock: Callable[[], float],
        on_queued: Callable[[set[str]], None],
        consumer_factory: Callable[[dict[str, Any]], ConsumerLike] = Consumer,
        on_step: Callable[[], None] = lambda: None,
        ends: EndsProbe | None = None,
    ) -> None:
        """``ends``: where the watch of the consumer asks the end offsets (an admin client of
        its own by default; kafka.stall)."""
        tx = settings.ssf_transmitter
        self._store = store
        self._maker = maker
        self._clock = clock
        self._on_queued = on_queued
        self._keep_s = tx.retention_s
        self._all_subjects = tx.default_subjects == "ALL"
        self._topic = settings.topics.revocations
        self._consumer_factory = consumer_factory
        self._stall_s = settings.kafka.fetch_stall_s
        self._ends = ends or AdminEnds.of(client_config(settings.kafka))
        self._consumer_config: dict[str, Any] = {
            **client_config(settings.kafka),
            "group.id": ingest_group(settings),
            "client.id": "sessionwarden-ssf-transmitter",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # As the enforcer's: a crashed transmitter's partitions come back this soon.
            "session.timeout.ms": settings.enforcer.session_timeout_ms,
            "heartbeat.interval.ms": max(250, settings.enforcer.session_timeout_ms // 4),
            "log_level": 4,
        }
        self._consumer = consumer_factory(self._consumer_config)
        self.stats: dict[str, float] = {
            "records_read": 0, "sets_queued": 0, "sets_expired": 0, "records_skipped": 0,
        }  # fmt: skip
        self._on_step = on_step
        self.assigned = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._expired_at = 0.0
        self._stream_keep: dict[str, float] = {}
        """Each stream's retention, as :meth:`rows` last read the streams."""

    def start(self) -> None:
        self._consumer.subscribe([self._topic], on_assign=self._assigned)
        self._thread = threading.Thread(target=self._run, name="ssf-ingest", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._consumer.close()

    def _assigned(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": len(partitions)})
        self.assigned.set()

    def _run(self) -> None:
        watch = StallWatch(self._stall_s, self._ends)
        while not self._stop.is_set():
            try:
                self._on_step()
                self.step()
                watch.tend(
                    self._consumer,
                    self._reopen,
                    "the SSF reader's Kafka consumer stopped fetching with records waiting:"
                    " reopened at the committed offsets",
                )
            except KafkaException as exc:
                # Nothing of the batch was committed to Kafka: it is read again (same jti).
                log.error("the SSF reader failed; retrying", extra=error_fields(exc))
                self._stop.wait(1.0)
            except Exception:
                log.exception("the SSF reader stopped: no further events are queued")
                return

    def _reopen(self, _stall: Stall) -> None:
        """Every batch read is committed by now: the new consumer resumes after it."""
        self._consumer.close()
        self._consumer = self._consumer_factory(self._consumer_config)
        self._consumer.subscribe([self._topic], on_assign=self._assigned)

    def step(self, timeout: float = _WAIT_S) -> int:
        """Queue the SETs of one batch of records, then commit its offsets. Returns new SETs."""
        msgs = self._consumer.consume(_BATCH, timeout)
        now = self._clock()
        if now - self._expired_at >= _EXPIRE_EVERY_S:
            self._expired_at = now
            expired = self._store.expire(now, self._keep_s)
            self.stats["sets_expired"] += expired
            if expired:
                log.warning("undelivered SETs expired", extra={"count": expired})
        read = [m for m in msgs if m.error() is None]
        if not read:
            return 0
        rows = self.rows([m.value() for m in read if m.value()], now)
        new = self._store.enqueue(rows, now, self._stream_keep)
        self._consumer.commit(asynchronous=False)
        self.stats["records_read"] += len(read)
        self.stats["sets_queued"] += new
        if rows:
            self._on_queued({stream_id for stream_id, _, _ in rows})
        return new

    def rows(self, values: list[bytes], now: float) -> list[tuple[str, str, bytes]]:
        """(stream_id, jti, token) of every SET the records give, pure but for reading the
        streams and their subjects from the store (and noting each stream's retention, with
        which :meth:`step` queues its rows)."""
        streams = [s for s in self._store.streams() if s.holds_events]
        self._stream_keep = {s.stream_id: retention_of(s, self._keep_s) for s in streams}
        if not streams:
            return []
        subjects = {} if self._all_subjects else self._store.subjects()
        rows: list[tuple[str, str, bytes]] = []
        for value in values:
            try:
                record = orjson.loads(value)
                if not isinstance(record, dict) or record.get("type") not in RECORD_TYPES:
                    continue
                cause = cause_of(record, RECORD_TYPES)
            except (orjson.JSONDecodeError, SetError) as exc:
                self.stats["records_skipped"] += 1
                log.warning("no SET for a record", extra=error_fields(exc))
                continue
            if cause is None:
                continue
            subject = self._maker.subject(cause)
            for stream in streams:
                if not stream.wants(cause.event_type):
                    continue
                if not keeps(stream, cause.issued_at, now, self._keep_s):
                    continue
                if not self._all_subjects and not subject_matches(
                    subjects.get(stream.stream_id, []), subject
                ):
                    continue
                jti, token = self._maker.for_cause(cause, stream)
                rows.append((stream.stream_id, jti, token))
        return rows
