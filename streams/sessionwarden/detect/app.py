"""The anomaly detectors as a faust-streaming app: a thin shell around the pure engine.

One agent (concurrency 1) reads the audit stream as raw bytes in batches (``take_events``),
decodes each record with our codec and lets :class:`Engine` judge it against its user's state,
one document per user (documents.py) stamped with the last audit position judged into it. It
then sends the batch's alerts, awaits their delivery together, and only then writes each
changed document once, then a marker per partition, to the faust table. faust acks a batch's
events after that, and commits offsets after it flushed the producer. After a crash the records
past the last commit are read again: those the state holds are skipped (their alerts went out
before their state was written), the others are judged against the state as of before them,
exactly as the first time, with the same deterministic ``alert_id``. faust's ``exactly_once``
is not used (see docs/DETECTORS.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import faust
import faust.streams as faust_streams
from confluent_kafka.admin import AdminClient

from sessionwarden.caep.events import CaepConfig, caep_events_for
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import DecodeError, decode_audit_event, encode_dict
from sessionwarden.detect.changelogs import ensure_changelogs
from sessionwarden.detect.commits import CommitWatch, FaustBookkeeping, watch_commits
from sessionwarden.detect.documents import (
    DEFAULT_MAX_DOCUMENTS,
    USERS,
    Flushed,
    UserStore,
    is_user_key,
)
from sessionwarden.detect.engine import Engine
from sessionwarden.detect.metrics import BEAT_INTERVAL_S, DetectObserver, detect_observer_for
from sessionwarden.errors import ConfigError
from sessionwarden.kafka.security import KafkaSecurity, client_config
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.policy import Policy

log = logging.getLogger(__name__)

_NOISY = ("faust", "mode", "aiokafka")
BATCH_MAX = 1000
"""Audit records judged per batch: alerts delivered together, each changed document written once."""
BATCH_WITHIN_S = 0.01
"""How long a batch waits to fill before a short one is judged (bounds the added alert delay)."""
COMMIT_WATCH_INTERVAL_S = 1.0
"""How often faust's commit bookkeeping of the audit partitions is looked at."""
PRODUCER_LINGER_S = 0.005
"""Changelog and alert records wait this long to share a produce request (faust's default, 0,
sends a request per record)."""
EVICTION_LOG_INTERVAL_S = 10.0
"""Documents evicted at the maximum are logged at most this often (with the count since)."""


def app_id(settings: Settings) -> str:
    """Consumer group and faust id; faust's changelog topics are named after it."""
    return f"{settings.topics.prefix}{settings.detect.group_id}"


def _faust_app(settings: Settings, ident: str, data_dir: Path | None) -> faust.App:
    """The faust app with every setting from Settings (none from the environment)."""
    web = settings.detect.web_enabled
    return faust.App(
        ident,
        env={},  # every setting comes from Settings: faust must not read the environment
        broker=[f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")],
        broker_credentials=KafkaSecurity.from_settings(settings.kafka).faust_credentials(),
        autodiscover=False,
        store="memory://",
        datadir=str(data_dir or settings.detect.data_dir or _default_data_dir(ident)),
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.detect.commit_interval_s,
        broker_session_timeout=settings.detect.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.detect.session_timeout_s / 3),
        producer_acks=-1,
        producer_linger=PRODUCER_LINGER_S,
        web_enabled=web,
        web_bind=settings.detect.web_host,
        web_host=settings.detect.web_host,
        web_port=settings.detect.web_port,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=web,
    )


def create_app(
    settings: Settings,
    policy: Policy,
    data_dir: Path | None = None,
    observer: DetectObserver | None = None,
    halt: Callable[[BaseException], None] | None = None,
) -> faust.App:
    """Build the detect app; nothing connects until a worker starts it. ``halt`` is what a
    failed batch calls (default :func:`halt_worker`)."""
    observer = observer if observer is not None else DetectObserver()
    engine = Engine(policy)
    ident = app_id(settings)
    app = _faust_app(settings, ident, data_dir)
    audit = app.topic(settings.topics.audit, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(settings.topics.alerts, key_serializer="raw", value_serializer="raw")
    users = _users_table(app, settings)
    caep = CaepConfig.for_detectors(settings)  # never the enforcer's key (docs/SECURITY.md)
    if caep is None and settings.caep.enabled:
        log.info("no CAEP risk-level-change tokens: detect_caep_issuer is not set")
    caep_topic = (
        app.topic(settings.topics.caep, key_serializer="raw", value_serializer="raw")
        if caep is not None
        else None
    )
    shell = DetectShell(
        engine,
        users,
        alerts,
        settings.logging.salt,
        caep,
        caep_topic,
        observer,
        settings.detect.max_documents,
    )
    shell.drain = app.producer.buffer.flush

    async def detect(stream: Any) -> None:
        batches = stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S)
        await judge_batches(batches, lambda events: shell.handle_batch(events, _writing_for), halt)

    app.agent(audit, name="sessionwarden-detect", concurrency=1)(detect)

    async def beat() -> None:
        observer.beat()

    app.timer(BEAT_INTERVAL_S)(beat)

    commits = CommitWatch()

    async def watch_committed() -> None:
        # faust can be left unable to commit an audit partition (sessionwarden/detect/commits.py)
        if not app.rebalancing:
            book = FaustBookkeeping(app.consumer, settings.topics.audit)
            await watch_commits(commits, book, time.monotonic(), observer.commit_reread)

    app.timer(COMMIT_WATCH_INTERVAL_S)(watch_committed)

    async def on_rebalance_complete(sender: Any, *_: Any, **__: Any) -> None:
        actives = app.assignor.assigned_actives()
        mine = sorted(tp.partition for tp in actives if tp.topic == settings.topics.audit)
        observer.rebalance_end(len(mine))
        shell.users.forget_index()  # the table holds other partitions now
        log.info(
            "partitions assigned and recovered",
            extra={"partitions": mine, "users": sum(1 for key in users if is_user_key(key))},
        )

    # mode types signal receivers with mypy's extended callable types, which no plain
    # signature satisfies; the receiver is called as receiver(sender, signal=...).
    async def on_partitions_assigned(sender: Any, *_: Any, **__: Any) -> None:
        observer.rebalance_begin()  # the tables recover until the rebalance completes

    receiver: Any = on_rebalance_complete
    app.on_rebalance_complete.connect(receiver)
    receiver = on_partitions_assigned
    app.on_partitions_assigned.connect(receiver)
    return app


async def judge_batches(
    batches: AsyncIterator[Sequence[Any]],
    handle: Callable[[Sequence[Any]], Awaitable[None]],
    halt: Callable[[BaseException], None] | None = None,
) -> None:
    """Hand each batch to ``handle``; a batch that fails (its alerts not delivered, its state
    not written) halts the worker at once. faust's ``take_events`` acks a batch's records once
    the loop leaves it, even on an exception, and an agent that crashed is restarted on the next
    records: carrying on would commit past records that were never judged. Halted, the worker
    commits nothing more; after a restart those records are read again (judging is
    idempotent, docs/DETECTORS.md)."""
    async for events in batches:
        try:
            await handle(events)
        except Exception as exc:  # any failure of a batch stops the worker
            (halt or halt_worker)(exc)
            raise


HALT_EXIT_STATUS = 70
"""The worker's exit status when a batch failed (EX_SOFTWARE): its supervisor restarts it."""


def halt_worker(exc: BaseException) -> None:
    """Log why, then end the process without running faust's shutdown (which would ack and
    commit the failed batch)."""
    log.critical(
        "a batch of audit records could not be judged; stopping before its offsets are "
        "committed (they are read again after a restart)",
        exc_info=exc,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(HALT_EXIT_STATUS)


async def _nothing_buffered() -> None:
    return None


def _writing_for(event: Any) -> None:
    """Make ``event`` the current event of this task: faust tables take a write's changelog
    partition from it, and a key must go to the partition of the event that wrote it (its
    user's), not to the batch's last one. Only this task's context changes; the stream's own
    ``current_event``, which ``take_events`` reads to buffer the next event, is left alone."""
    faust_streams._current_event.set(weakref.ref(event))


def _default_data_dir(ident: str) -> Path:
    return Path(tempfile.gettempdir()) / f"{ident}-data"


def _users_table(app: faust.App, settings: Settings) -> Any:
    """The detectors' state: one document per user and a marker per partition
    (sessionwarden/detect/documents.py). Keys (tuples) are stored as JSON, values (our JSON)
    raw; faust picks the serializers from the types."""
    return app.Table(
        USERS,
        default=None,
        value_type=bytes,
        partitions=settings.kafka.partitions,
        help="the detectors' state: a document per user, a marker per audit partition",
    )


class DetectShell:
    """Decode and judge a batch of audit events, deliver its alerts, then write its state."""

    def __init__(
        self,
        engine: Engine,
        users: MutableMapping[Any, bytes],
        alerts: Any,
        salt: str = "",
        caep: CaepConfig | None = None,
        caep_topic: Any = None,
        observer: DetectObserver | None = None,
        max_documents: int = DEFAULT_MAX_DOCUMENTS,
    ) -> None:
        self.metrics = observer if observer is not None else DetectObserver()
        self.caep = caep
        self.caep_topic = caep_topic
        self.engine = engine
        self.users = UserStore(users, engine.retention, max_documents)
        self.alerts = alerts
        self.session_hash = SessionHasher(salt)
        self.drain: Callable[[], Awaitable[None]] = _nothing_buffered
        self.events = 0
        self.skipped = 0
        self.replayed = 0
        self.emitted = 0
        self.expired = 0
        self.evicted = 0
        self._evicted_unlogged = 0
        self._eviction_logged_at = -EVICTION_LOG_INTERVAL_S

    async def handle(self, event: Any) -> None:
        await self.handle_batch([event])

    async def handle_batch(
        self, events: Sequence[Any], make_current: Callable[[Any], None] = lambda _: None
    ) -> None:
        """Judge the events in order, deliver their alerts, then write the state they changed."""
        alerts: list[dict[str, Any]] = []
        for event in events:
            self._judge(event, alerts)
        deliveries = [
            await self.alerts.send(key=a["user_id"].encode(), value=encode_dict(a)) for a in alerts
        ]
        await asyncio.gather(*deliveries)  # delivered before the state that records them
        for alert in alerts:
            await self._after_delivery(alert)
        self._flushed(self.users.flush(make_current))
        # Hand the changelog records to the client before the next batch sends its alerts
        # (faust's flow control does the same past 100 buffered records; without it we saw
        # alert deliveries stall behind a burst of buffered changelog records).
        await self.drain()

    def _flushed(self, flushed: Flushed) -> None:
        self.expired += flushed.expired
        self.evicted += flushed.evicted
        self.metrics.documents(flushed.documents, flushed.expired, flushed.evicted)
        if not flushed.evicted:
            return
        self._evicted_unlogged += flushed.evicted
        now = time.monotonic()
        if now - self._eviction_logged_at >= EVICTION_LOG_INTERVAL_S:
            log.warning(
                "user documents at the maximum: the ones that expire first were removed while "
                "still live (their sessions, marks and cooldowns are forgotten)",
                extra={
                    "evicted": self._evicted_unlogged,
                    "documents": flushed.documents,
                    "max_documents": self.users.max_documents,
                },
            )
            self._evicted_unlogged = 0
            self._eviction_logged_at = now

    def _judge(self, event: Any, alerts: list[dict[str, Any]]) -> None:
        msg = event.message
        at = (msg.partition, msg.offset)
        self.events += 1
        self.users.seen(at, event)
        try:
            record = decode_audit_event(event.value)
        except DecodeError as exc:
            self.skipped += 1
            self.metrics.skipped(exc.reason)
            log.warning(
                "skipped an undecodable audit record",
                extra={**_where(msg), "reason": exc.reason, "detail": exc.detail},
            )
            return
        try:
            user = (record.tenant, record.user_id)
            doc = self.users.to_judge(user, at, record.occurred_at.timestamp())
            if doc is None:
                self.replayed += 1  # read again after a restart: its state and alerts are out
                return
            outcome = self.engine.process(record, self.engine.state(doc.tables), time.time())
        except Exception:  # a bug (or unreadable state) must not stop detection for everyone
            self.skipped += 1
            self.metrics.skipped("internal_error")
            log.exception("internal error on an audit record; skipped", extra=_where(msg))
            return
        self.metrics.event(record.type)
        alerts.extend(outcome.alerts)
        self.users.touched(doc, at, record.occurred_at.timestamp(), outcome.writes, event)
        for kind in outcome.suppressed:
            self.metrics.withheld(kind)
            log.debug(
                "alert withheld by the cooldown", extra={"kind": kind, "user_id": record.user_id}
            )

    async def _after_delivery(self, alert: dict[str, Any]) -> None:
        user = alert["user_id"]
        if self.caep is not None and self.caep_topic is not None:
            for key, token in caep_events_for(alert, self.caep):  # risk-level-change
                await (await self.caep_topic.send(key=key, value=token))
        self.emitted += 1
        self.metrics.alert(alert["kind"], alert["severity"])
        log.warning(
            "alert",
            extra={
                "alert_id": str(alert["alert_id"]),
                "kind": alert["kind"],
                "severity": alert["severity"],
                "user_id": user,
                "tenant": alert["tenant"],
                "suppressed": alert["suppressed"],
                "sessions": [self.session_hash(s) for s in alert["evidence"]["session_ids"][:8]],
            },
        )


def _where(msg: Any) -> dict[str, Any]:
    return {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}


def check_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Refuse to start without the audit and alert topics, or with another partition count."""
    admin = AdminClient(client_config(settings.kafka))
    topics = admin.list_topics(timeout=timeout).topics
    problems = []
    for name in (settings.topics.audit, settings.topics.alerts):
        found = topics.get(name)
        if found is None or found.error is not None:
            problems.append(f"{name}: missing")
        elif len(found.partitions) != settings.kafka.partitions:
            have = len(found.partitions)
            problems.append(
                f"{name}: has {have} partitions, settings say {settings.kafka.partitions}"
            )
    if problems:
        raise ConfigError(
            "the detect worker cannot start:\n  "
            + "\n  ".join(problems)
            + "\nCreate the topics with `sessionwarden topics create` (same settings)."
        )


def run(settings: Settings, policy: Policy) -> int:
    """Run the detect worker until SIGTERM or SIGINT; returns the exit status.

    Logging must be configured by the caller (the entry point); faust's own chatter is kept to
    warnings unless the log level is DEBUG.
    """
    security = KafkaSecurity.from_settings(settings.kafka)
    if security.protocol != "PLAINTEXT":
        from sessionwarden.kafka.security import check_connection

        check_connection(settings.kafka.bootstrap_servers, security)
    check_topics(settings)
    if settings.logging.level != "DEBUG":
        for name in _NOISY:
            logging.getLogger(name).setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    observer = detect_observer_for(settings)
    observer.start()
    with tempfile.TemporaryDirectory(prefix="sessionwarden-detect-") as scratch:

        def halt(exc: BaseException) -> None:
            shutil.rmtree(scratch, ignore_errors=True)  # os._exit skips the cleanup below
            halt_worker(exc)

        app = create_app(
            settings, policy, settings.detect.data_dir or Path(scratch), observer, halt
        )
        ensure_changelogs(app, settings)
        worker = faust.Worker(
            app, loop=loop, override_logging=False, redirect_stdouts=False, quiet=True
        )
        worker.spinner = None  # no terminal spinner on stdout
        log.info(
            "detect worker starting",
            extra={"app_id": app.conf.id, "policy_version": policy.version},
        )
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            code = exc.code
        else:  # pragma: no cover - execute_from_commandline always exits
            code = 0
    observer.close()
    log.info("detect worker stopped", extra={"exit_status": code})
    return code if isinstance(code, int) else (0 if code is None else 1)
