"""The dashboard's reader: the revocation, audit and alert topics (read_committed, from the
beginning) applied to a DashboardState in a thread, and the consumer lag of the enforcer and the
detectors asked of the broker every few seconds.

Records are applied one at a time (:class:`RecordApplier`): a record that is not JSON, not an
object, too large, or refused by the state (an alert the schema does not accept) is counted in
``records_skipped`` and logged with its topic, partition, offset and reason (never its
content, at most one line per ``LOG_EVERY_S``); it never costs the rest of its batch."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings
from sessionwarden.kafka.offsets import GroupOffsets, group_lag
from sessionwarden.kafka.security import client_config
from sessionwarden.kafka.stall import AdminEnds, Key, Stall, StallWatch
from sessionwarden.ops.logs import error_fields
from sessionwarden.web.dashboard.view import DashboardState, alert_problem

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1024 * 1024
LOG_EVERY_S = 10.0
"""At most one warning about skipped records this often (a flood must not flood the log)."""


class MessageLike(Protocol):
    def error(self) -> Any: ...
    def value(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


class RecordApplier:
    """Applies consumed records to the state one by one; see the module."""

    def __init__(
        self,
        apply: Mapping[str, Callable[[dict[str, Any], float], bool]],
        stats: dict[str, int],
        alerts_topic: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._apply, self.stats, self._alerts = apply, stats, alerts_topic
        self._clock = clock
        self._next_log = 0.0
        self._unlogged = 0

    def apply(self, msgs: Sequence[MessageLike], received: float) -> None:
        for msg in msgs:
            why = self._apply_one(msg, received)
            if why is None:
                self.stats["records"] += 1
            else:
                self.stats["records_skipped"] += 1
                self._skipped(msg, why)

    def _apply_one(self, msg: MessageLike, received: float) -> str | None:
        """None when applied, else why not."""
        value = msg.value()
        if msg.error() is not None:
            return "consumer error"
        if not value:
            return "empty"
        if len(value) > MAX_RECORD_BYTES:
            return "too large"
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return "not JSON"
        if not isinstance(doc, dict):
            return "not a JSON object"
        topic = msg.topic() or ""
        try:
            used = self._apply[topic](doc, received)
        except Exception as exc:  # a bug on one record must not cost the others
            return f"internal error: {type(exc).__name__}"
        if used:
            return None
        problem = alert_problem(doc) if topic == self._alerts else None
        return f"invalid: {problem}" if problem else "invalid"

    def _skipped(self, msg: MessageLike, why: str) -> None:
        now = self._clock()
        if now < self._next_log:
            self._unlogged += 1
            return
        self._next_log = now + LOG_EVERY_S
        where = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
        log.warning(
            "dashboard skipped a record",
            extra={**where, "reason": why, "skipped_unlogged": self._unlogged},
        )
        self._unlogged = 0


class DashboardFeed:
    """Applies the three topics to ``state`` under ``lock`` and calls ``on_change`` after each
    batch that changed it (from the feed's thread)."""

    def __init__(
        self,
        settings: Settings,
        state: DashboardState,
        lock: threading.Lock,
        on_change: Callable[[], None],
        detect_group: str,
        lag_every_s: float = 2.0,
        on_step: Callable[[], None] = lambda: None,
    ) -> None:
        topics = settings.topics
        self._topics = (topics.revocations, topics.audit, topics.alerts)
        self._groups = {
            "enforcer": (settings.enforcer.group_id, topics.input),
            "detectors": (detect_group, topics.audit),
        }
        self.state, self.lock, self.on_change = state, lock, on_change
        self.lag_every_s = lag_every_s
        self.on_step = on_step
        # Counters of the feed, exported as sessionwarden_dashboard_<key>_total.
        self.stats = {"records": 0, "records_skipped": 0, "feed_errors": 0, "consumer_reopens": 0}
        apply = {
            topics.revocations: state.apply_revocation,
            topics.audit: state.apply_audit,
            topics.alerts: state.apply_alert,
        }
        self._records = RecordApplier(apply, self.stats, topics.alerts)
        client = {**client_config(settings.kafka), "log_level": 4}
        self._consumer_config = {
            **client, "group.id": f"sessionwarden-dashboard-{uuid.uuid4().hex}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }  # fmt: skip
        self._consumer = Consumer(self._consumer_config)
        self._assigned_at: dict[Key, int] = {}  # where a reopen put a partition
        self._watch = StallWatch(
            settings.kafka.fetch_stall_s, AdminEnds.of(client), fallback=lambda: self._assigned_at
        )
        self._admin = AdminClient(client)
        self._offsets = {
            name: GroupOffsets(client, group) for name, (group, _) in self._groups.items()
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        assignment = []
        for topic in self._topics:
            meta = self._consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if meta is None or meta.error is not None:
                raise RuntimeError(f"cannot read {topic}: {meta.error if meta else 'unknown'}")
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self._consumer.assign(assignment)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._consumer.close()
        for offsets in self._offsets.values():
            offsets.close()

    def _run(self) -> None:
        next_lag = 0.0
        while not self._stop.is_set():
            self.on_step()
            try:
                changed = self._read()
                self._watch.tend(
                    self._consumer,
                    self._reopen,
                    "the dashboard's Kafka consumer stopped fetching with records waiting:"
                    " reopened",
                )
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + self.lag_every_s
                    changed = self._probe_lag() or changed
            except Exception:  # never let one bad moment end the live view
                log.exception("dashboard feed error")
                self.stats["feed_errors"] += 1
                time.sleep(1.0)
                continue
            if changed:
                self.on_change()

    def _reopen(self, stall: Stall) -> None:
        """A consumer that stopped fetching with records waiting is replaced by one assigned
        where it stood (its positions: the next records to apply), so none is applied twice.
        A partition it had not read from stands where it was assigned (the beginning, or where
        the last reopen put it)."""
        assignment = stall.resume_at(OFFSET_BEGINNING)
        self._assigned_at = {(tp.topic, tp.partition): tp.offset for tp in assignment}
        stuck, self._consumer = self._consumer, Consumer(self._consumer_config)
        stuck.close()
        self._consumer.assign(assignment)
        self.stats["consumer_reopens"] += 1

    def _read(self) -> bool:
        msgs = self._consumer.consume(1000, 0.1)
        received = time.time()
        if not msgs:
            return False
        before = self.state.version
        with self.lock:
            self._records.apply(msgs, received)
        return self.state.version != before

    def _probe_lag(self) -> bool:
        before = self.state.version
        for name, (group, topic) in self._groups.items():
            try:
                meta = self._admin.list_topics(topic, timeout=5.0).topics[topic]
                tps = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
                lag: int | None = group_lag(self._admin, self._offsets[name], tps)
            except Exception as exc:
                log.debug("no lag", extra={"group": group, **error_fields(exc)})
                lag = None
            with self.lock:
                self.state.set_lag(name, group, lag)
        return self.state.version != before
