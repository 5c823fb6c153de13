"""`sessionwarden sink postgres`: the revocation topic (read_committed) into PostgreSQL, exactly
once without Kafka transactions. The consumed offsets are stored in the database transaction of
the rows; on assignment the sink seeks to them, and commits nothing to Kafka. After each commit
it cuts off the backends of the sessions just revoked; rows past keep_until are pruned."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.errors import SessionwardenError
from sessionwarden.kafka.security import client_config
from sessionwarden.kafka.stall import AdminEnds, EndsProbe, Key, Stall, StallWatch
from sessionwarden.ops.logs import error_fields
from sessionwarden.ops.service_metrics import ServiceObserver
from sessionwarden.policy import Policy
from sessionwarden.sink.postgres.dsn import connect_error, describe_dsn, redact
from sessionwarden.sink.postgres.migrations import check_schema
from sessionwarden.sink.postgres.plan import (
    Batch,
    CutOffSchedule,
    PruneSchedule,
    RawRecord,
    plan_batch,
    utc,
)
from sessionwarden.sink.postgres.store import OffsetConflict, RevocationStore

log = logging.getLogger(__name__)
_PROGRESS_EVERY_S = 10.0
_SECOND_PASS_S = 0.5
"""How long after the cut-off of a batch's sessions every backend still marked with one of them
is terminated (docs/DATABASE.md: a cancel needs a few milliseconds to end a transaction)."""


class SinkError(SessionwardenError):
    """The sink cannot run: no DSN, PostgreSQL unreachable or refusing, schema missing."""


def connect(dsn: str) -> psycopg.Connection[Any]:
    """An autocommit connection (every transaction explicit); one clear SinkError if refused,
    naming the server and never the password (sessionwarden.sink.postgres.dsn)."""
    if not dsn:
        raise SinkError("no PostgreSQL DSN: set SESSIONWARDEN_PG_DSN (or pg_dsn in the config)")
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise SinkError(
            f"cannot connect to PostgreSQL as {describe_dsn(dsn)}: {connect_error(dsn, exc)}"
        ) from None


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        **client_config(settings.kafka),  # bootstrap servers and the security properties
        "group.id": settings.sink.group_id,
        "client.id": "sessionwarden-pg-sink",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",  # eager: on_assign seeks with assign()
        "session.timeout.ms": settings.enforcer.session_timeout_ms,
        "heartbeat.interval.ms": max(250, settings.enforcer.session_timeout_ms // 4),
        "fetch.wait.max.ms": 20,
        "log_level": 4,
    }


class PostgresSink:
    """The consume → plan → write → cut-off loop. ``stop()`` may be called from a signal."""

    def __init__(self, settings: Settings, policy: Policy) -> None:
        self.settings = settings
        self.topic = settings.topics.revocations
        self.keep_for = timedelta(seconds=policy.max_absolute)
        self.seen: dict[int, int] = {}  # partition -> next offset, as stored in the database
        self.stats = {
            "records": 0,
            "rows": 0,
            "expired": 0,
            "undecodable": 0,
            "cut_off": 0,
            "cut_off_refused": 0,  # signals the server refused (a superuser's backend)
            "cut_off_failed": 0,  # cut-off queries that failed (the rows were committed)
            "consumer_reopens": 0,  # consumers that stopped fetching, reopened (kafka.stall)
        }
        self._stop = threading.Event()
        self._prune = PruneSchedule(settings.sink.prune_interval_s)
        self._second_pass = CutOffSchedule(_SECOND_PASS_S)
        self._store: RevocationStore | None = None
        self._consumer: Consumer | None = None
        self.consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer
        self.clock: Callable[[], float] = time.monotonic  # of the stalled-consumer watch
        self.ends: EndsProbe = AdminEnds.of(client_config(settings.kafka))
        """Where the stalled-consumer watch asks the end offsets (never the consumer)."""
        self._releasing = True  # holds of mass revocations may wait for their release
        self.metrics = ServiceObserver(
            settings, settings.metrics.sink_port, "sessionwarden_sink", lambda: self.stats
        )

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        conn = connect(self.settings.sink.dsn)
        log.info("sink starting", extra={"database": describe_dsn(self.settings.sink.dsn)})
        with conn:
            self._store = RevocationStore(conn, self.topic)
            try:
                check_schema(conn)
                if self._store.repair_last_write():
                    log.warning(
                        "the recorded revocation write was in this server's future (a restored"
                        " database?): reset, guarded statements no longer fail on it"
                    )
                self._report_bypasses(self._store)
                if self.settings.sink.cut_off:
                    self._report_missing_powers(self._store)
            except psycopg.Error as exc:
                raise SinkError(
                    "cannot read the sessionwarden schema: "
                    + redact(str(exc), self.settings.sink.dsn)
                ) from None
            self._consumer = self.consumer_factory(consumer_config(self.settings))
            self.metrics.start()
            try:
                if self.settings.sink.cut_off:
                    self._cut_off_stored(self._store)
                self._check_topic(self._consumer)
                self._consumer.subscribe([self.topic], on_assign=self._on_assign)
                self._loop()
            except psycopg.Error as exc:
                raise SinkError(
                    "PostgreSQL failed under the sink: " + redact(str(exc), self.settings.sink.dsn)
                ) from None
            finally:
                self._consumer.close()
                self.metrics.close()
        log.info("sink stopped", extra=dict(self.stats))

    def _cut_off_stored(self, store: RevocationStore) -> None:
        """Cut off the backends of every session already in the revocation set: a sink stopped
        between a commit and its cut-off (a crash, a kill) leaves none running past its
        restart. The second pass follows as for a batch."""
        tags = store.revoked_tags()
        if tags:
            self._cut_off(tags, second_pass=False)
            self._second_pass.add(tags, time.monotonic())

    @staticmethod
    def _report_bypasses(store: RevocationStore) -> None:
        """Log what sessionwarden.bypasses() finds: the sink cannot close these, people can."""
        for table, kind, obj, detail in store.bypasses():
            log.warning(
                "a way around the guard of a protected table",
                extra={"table": table, "kind": kind, "object": obj, "detail": detail},
            )

    @staticmethod
    def _report_missing_powers(store: RevocationStore) -> None:
        """Warn of each predefined role the cut-off needs and the sink's role lacks."""
        effects = {
            "pg_signal_backend": "the cut-off cannot cancel or terminate other roles' backends:"
            " a revoked session's open cursor or transaction runs on",
            "pg_read_all_stats": "the cut-off cannot see whether a backend runs a statement:"
            " it terminates every backend of a revoked session instead of cancelling",
        }
        for role in store.missing_powers():
            log.warning(
                "the sink's role lacks a role the cut-off needs",
                extra={
                    "role": role,
                    "effect": effects[role],
                    "fix": f"GRANT {role} TO <sink role>",
                },
            )

    def _check_topic(self, consumer: Consumer) -> None:
        try:
            found = consumer.list_topics(self.topic, timeout=15).topics.get(self.topic)
        except KafkaException as exc:
            raise SinkError(
                f"no Kafka broker answered at {self.settings.kafka.bootstrap_servers}: {exc}"
            ) from exc
        if found is None or found.error is not None:
            raise SinkError(
                f"no topic {self.topic} on {self.settings.kafka.bootstrap_servers}:"
                " run `sessionwarden topics create` (and the enforcer)"
            )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._store is not None
        stored = self._store.offsets(tp.partition for tp in partitions)
        self.seen = dict(stored)
        for tp in partitions:
            tp.offset = stored[tp.partition]
        consumer.assign(partitions)
        self.metrics.ready()  # seeking to the stored offsets is the whole restore
        log.info(
            "partitions assigned",
            extra={"topic": self.topic, "offsets": {str(p): o for p, o in sorted(stored.items())}},
        )

    def _loop(self) -> None:
        assert self._consumer is not None
        next_progress = time.monotonic() + _PROGRESS_EVERY_S
        watch = StallWatch(
            self.settings.kafka.fetch_stall_s,
            self.ends,
            clock=self.clock,
            fallback=self._stored_positions,
        )
        while not self._stop.is_set():
            self.metrics.step()
            records = self._records(self._next_messages(self._consumer))
            if records:
                self._write(plan_batch(records, utc(time.time()), self.keep_for), len(records))
            elif self._releasing:
                self._releasing = self._store_release()
            now = time.monotonic()
            due = self._second_pass.due(now)
            if due:
                self._cut_off(due, second_pass=True)
            if self._prune.due(now):
                self._prune_expired()
                self._prune.done(time.monotonic())
            if now >= next_progress:
                self._progress()
                next_progress = now + _PROGRESS_EVERY_S
            watch.tend(
                self._consumer,
                self._reopen_consumer,
                "the Kafka consumer stopped fetching with records waiting: reopened at the stored"
                " offsets",
            )

    def _stored_positions(self) -> dict[Key, int]:
        """Where a partition stands before its consumer read from it: its stored offset."""
        return {(self.topic, p): o for p, o in self.seen.items()}

    def _reopen_consumer(self, stall: Stall) -> None:
        """A consumer that stopped fetching with records waiting is closed (it leaves the group)
        and a new one subscribes: on assignment it seeks to the offsets stored with the rows,
        as after any rebalance, so nothing is skipped and nothing is stored twice."""
        stuck, self._consumer = (
            self._consumer,
            self.consumer_factory(consumer_config(self.settings)),
        )
        if stuck is not None:
            stuck.close()
        self._consumer.subscribe([self.topic], on_assign=self._on_assign)
        self._count(consumer_reopens=1)

    def _next_messages(self, consumer: Consumer) -> list[Message]:
        """Wait for one message, then take what is already fetched: consume(n, timeout) alone
        would wait out its timeout whenever fewer than n records are there."""
        first = consumer.poll(0.05)
        if first is None:
            return []
        more = self.settings.sink.batch_size - 1
        return [first, *consumer.consume(more, 0)] if more else [first]

    def _records(self, messages: list[Message]) -> list[RawRecord]:
        records = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise SinkError(f"fatal Kafka error: {err}")
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra=error_fields(err))
                continue
            partition, offset = msg.partition(), msg.offset()
            if partition in self.seen and offset >= self.seen[partition]:
                records.append(RawRecord(partition, offset, msg.value()))
        return records

    def _write(self, batch: Batch, consumed: int) -> bool:
        """Commit the batch of ``consumed`` records, count it, then cut off its sessions; False
        if it was rolled back."""
        assert self._store is not None and self._consumer is not None
        ends = None
        if batch.releasing:
            ends = self._topic_ends()
            if ends is None:  # the hold cannot be given its release offsets: read it again
                log.warning("end offsets not known: the batch is read again")
                self._reseek()
                return False
        try:
            self._releasing = 0 < self._store.write(batch, self.seen, ends, self._positions())
        except OffsetConflict as exc:
            log.warning("seeking to the stored offsets again", extra=error_fields(exc))
            self._reseek()
            return False
        self.seen.update(batch.next_offsets)
        for partition, offset, problem in batch.undecodable:
            log.warning(
                "undecodable revocation record skipped",
                extra={
                    "reason": problem.reason,
                    "topic": self.topic,
                    "partition": partition,
                    "offset": offset,
                },
            )
        self._count(
            records=consumed,
            rows=len(batch.rows),
            expired=batch.expired,
            undecodable=len(batch.undecodable),
        )
        if batch.rows and self.settings.sink.cut_off:
            self._cut_off(batch.tags, second_pass=False)
            self._second_pass.add(batch.tags, time.monotonic())
        return True

    def _topic_ends(self) -> dict[int, int] | None:
        """The end offset of every partition of the topic (the broker's, not the cache), or
        None if one is not known: where a mass revocation's rows end, its complete copy read."""
        assert self._consumer is not None
        try:
            md = self._consumer.list_topics(self.topic, timeout=5.0).topics[self.topic]
            ends = {}
            for p in md.partitions:
                tp = TopicPartition(self.topic, p)
                got = self._consumer.get_watermark_offsets(tp, timeout=2.0, cached=False)
                if got is None or got[1] < 0:
                    return None
                ends[p] = got[1]
        except KafkaException:
            return None
        return ends

    def _positions(self) -> dict[int, int]:
        """This sink's consumer positions of its partitions (what it consumed is stored)."""
        assert self._consumer is not None
        assigned = [TopicPartition(self.topic, p) for p in self.seen]
        try:
            found = self._consumer.position(assigned) if assigned else []
        except KafkaException:
            return {}
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def _store_release(self) -> bool:
        """Release the holds whose rows are all stored; True while some still wait."""
        assert self._store is not None
        return 0 < self._store.release(self._positions())

    def _count(self, **moved: int) -> None:
        """Move several counters at once: a scrape (another thread) reads either the counters
        before or after, never some moved and others not (rows stored, records not yet)."""
        assert moved.keys() <= self.stats.keys(), sorted(moved)
        self.stats = {k: v + moved.get(k, 0) for k, v in self.stats.items()}

    def _cut_off(self, tags: list[str], second_pass: bool) -> None:
        """Never fatal while the connection lives: the rows are committed, so the guard refuses
        the sessions already; a failed cut-off only leaves work already running."""
        assert self._store is not None
        refused_before = self._store.refused_signals
        try:
            cancelled, terminated = self._store.cut_off(tags, terminate_all=second_pass)
        except psycopg.Error as exc:
            if self._store.conn.closed or self._store.conn.broken:
                raise
            self._count(cut_off_failed=1)
            log.warning(
                "the cut-off of revoked sessions failed",
                extra={"error": redact(str(exc), self.settings.sink.dsn), "sessions": len(tags)},
            )
            return
        self._count(
            cut_off_refused=self._store.refused_signals - refused_before,
            cut_off=cancelled + terminated,
        )
        if cancelled or terminated:
            log.info(
                "backends of revoked sessions cut off",
                extra={
                    "cancelled": cancelled,
                    "terminated": terminated,
                    "pass": 2 if second_pass else 1,
                },
            )

    def _reseek(self) -> None:
        assert self._store is not None and self._consumer is not None
        stored = self._store.offsets(self.seen)
        self.seen = dict(stored)
        for partition, offset in stored.items():
            self._consumer.seek(TopicPartition(self.topic, partition, offset))

    def _prune_expired(self) -> None:
        assert self._store is not None
        pruned = self._store.prune(utc(time.time()))
        if pruned:
            log.info("pruned revocations past keep_until", extra={"rows": pruned})

    def _progress(self) -> None:
        """Log the counters and the lag: records up to the broker's ends not yet read (the
        position is past transaction markers, which the stored offsets never name). The ends
        are asked of the broker (bounded), never taken from the client's cache: a consumer that
        stopped fetching stops hearing of new ends too, and its cached lag reads 0. An end not
        given makes the lag unknown (null)."""
        assert self._consumer is not None
        lag: int | None = 0
        assigned = [TopicPartition(self.topic, p) for p in self.seen]
        for tp in self._consumer.position(assigned) if assigned else []:
            try:
                ends = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
            except KafkaException:
                ends = None
            if ends is None or ends[1] < 0:
                lag = None
                break
            at = tp.offset if tp.offset >= 0 else self.seen[tp.partition]
            lag = (lag or 0) + max(0, ends[1] - at)
        log.info("sink progress", extra={**self.stats, "lag": lag})
