"""RevocationListener: the current revocation set of a service, kept in memory from Kafka.

On ``start()`` the listener assigns every partition of the (compacted) revocation topic from the
beginning, notes the end offsets (read_committed: the last stable offsets) and reads up to them
in a background thread: that rebuilds the revocation set, after which ``ready()`` is true. It
then keeps tailing the topic. No consumer group is joined and no offset is ever committed: every
process holds the whole set.

A session is (tenant, session_id), taken from the record's fields: ``is_revoked(tenant,
session_id)`` is one dict lookup (two while a tenant is held: a ``tenant_revocation`` of a mass
revocation refuses every session of its tenant until its per-session records are all read,
``sdk/tenant_holds.py``); a single-tenant service binds its tenant once with
``bind(tenant)`` and asks ``is_revoked(session_id)`` of the view. Entries are forgotten
``max_lifetime_s`` after the revocation's ``effective_at`` (by default the policy's longest
absolute timeout): no token of a session outlives its absolute deadline, which is never later
than that, so memory stays bounded by the revocations of one session lifetime.

Staleness: every ``probe_interval_s`` the listener asks the broker for the end offsets (on an
admin client's connection, without blocking) and notes when it has read up to them: everything
produced before the question was asked has then been applied. If that moment is older than
``staleness_budget_s`` (the broker is lost, or the listener lags), the listener is unhealthy;
a listener whose background thread has died is unhealthy at once. Fail-closed (the default)
answers "revoked" for every session until it has caught up again; fail-open
(``fail_closed=False``) keeps answering from the set it has and logs loudly. docs/CLIENTS.md
and docs/SECURITY.md discuss the trade-off.

A probe that is not answered, fails, or answers with no valid offset (a frozen broker answers
OFFSET_INVALID) teaches nothing: staleness keeps growing. Failed probes are retried with a
backoff. The listener recovers by itself from clients left stale by a broker that was frozen,
restarted or moved its leaders: after probes have failed in a row it refreshes the admin
client's metadata, and if they still fail ``rebuild_after_s`` later it builds a new admin
client; a consumer that stops fetching while the probes answer (it is behind and reads
nothing for ``rebuild_after_s``) is rebuilt and assigned from its current positions, so no
record is skipped. Each such step is logged once and counted in ``stats``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import DecodeError, decode_revocation_record
from sessionwarden.contracts.outputs import Revalidation, Revocation, TenantRevocation
from sessionwarden.errors import SessionwardenError
from sessionwarden.kafka.offsets import AdminLike
from sessionwarden.kafka.security import KafkaSecurity, explain_refusal
from sessionwarden.ops.logs import error_fields
from sessionwarden.policy import Policy, default_policy, load_policy
from sessionwarden.sdk.health import HealthLog
from sessionwarden.sdk.revocation_set import RevocationSet, RevokedEntry, SessionKey
from sessionwarden.sdk.staleness import Staleness
from sessionwarden.sdk.tenant_holds import TenantHolds
from sessionwarden.sdk.tenant_view import TenantView

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_BATCH = 1000


class ListenerError(SessionwardenError):
    """The listener cannot start: no such topic, or no broker answered in time."""


class ConsumerLike(Protocol):
    """The part of confluent_kafka.Consumer the listener uses (tests pass a fake)."""

    def list_topics(self, topic: str, timeout: float) -> Any: ...
    def assign(self, partitions: list[TopicPartition]) -> None: ...
    def poll(self, timeout: float) -> Message | None: ...
    def consume(self, num_messages: int, timeout: float) -> list[Message]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def close(self) -> None: ...


@dataclass
class ListenerStats:
    records: int = 0
    revocations: int = 0
    revalidations: int = 0
    tenant_revocations: int = 0
    skipped: int = 0  # undecodable records and tombstones
    expired: int = 0  # revocations dropped for age, on arrival or later
    probes_failed: int = 0
    metadata_refreshes: int = 0
    admin_rebuilds: int = 0
    consumer_rebuilds: int = 0


class RevocationListener:
    """Keeps the revocation set of the topic in memory; see the module docstring.

    Callbacks run on the listener thread after the set has been updated, for replayed records
    during the bootstrap too (``ready()`` tells the two apart); an exception in a callback is
    logged and does not stop the listener.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        max_lifetime_s: float,
        staleness_budget_s: float = 10.0,
        fail_closed: bool = True,
        on_revocation: Callable[[Revocation], None] | None = None,
        on_revalidation: Callable[[Revalidation], None] | None = None,
        probe_interval_s: float | None = None,
        rebuild_after_s: float | None = None,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        consumer_factory: Callable[[dict[str, Any]], ConsumerLike] = Consumer,
        admin_factory: Callable[[dict[str, Any]], AdminLike] = AdminClient,
        **config: Any,
    ) -> None:
        if not staleness_budget_s > 0:
            raise ValueError(f"staleness_budget_s must be positive, got {staleness_budget_s!r}")
        self.topic = topic
        self.staleness_budget_s = staleness_budget_s
        self.probe_interval_s = probe_interval_s or min(1.0, staleness_budget_s / 4)
        self.stats = ListenerStats()
        self.on_revocation = on_revocation
        self.on_revalidation = on_revalidation
        self._revocation_callbacks: list[Callable[[Revocation], None]] = []
        self._fail_closed = fail_closed
        self._set = RevocationSet(max_lifetime_s)
        self._holds = TenantHolds(max_lifetime_s)
        # Wall clock for entry lifetimes (effective_at is wall time); monotonic for staleness.
        self._clock = clock
        self._monotonic = monotonic
        self._refused: str | None = None  # why the cluster refused us (login, TLS), if it did
        # Failed probes in a row are retried after the interval, doubling up to this.
        max_backoff = max(self.probe_interval_s, min(2.0, staleness_budget_s / 4))
        self.rebuild_after_s = rebuild_after_s or max(2 * max_backoff, staleness_budget_s / 2)
        config.setdefault("error_cb", self._on_client_error)
        self._consumer_factory = consumer_factory
        self._admin_factory = admin_factory
        self._consumer_conf = self._consumer_config(bootstrap_servers, config)
        self._admin_conf = {
            "bootstrap.servers": bootstrap_servers, "client.id": "sessionwarden-listener",
            "log_level": 4, **config,
        }  # fmt: skip
        self._consumer = consumer_factory(self._consumer_conf)
        self._admin = admin_factory(self._admin_conf)
        self._staleness = Staleness(
            self._admin,
            topic,
            self.probe_interval_s,
            min(5.0, staleness_budget_s / 2),
            monotonic,
            self._probe_failed,
            max_backoff,
        )
        self._tps: list[TopicPartition] = []
        self._next: dict[int, int] = {}  # partition -> offset after the last record read
        self._read_at = 0.0  # monotonic time a record was last read (or the consumer built)
        self._refreshed_for: float | None = None  # the failing run a metadata refresh was for
        self._admin_built_at = 0.0
        self._failures_at_rebuild = 0  # failed probes in a row when the admin was last built
        self._ready = threading.Event()
        self._running = False
        self._closed = False
        self._started_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._health_log = HealthLog(topic, staleness_budget_s, fail_closed)

    @classmethod
    def from_settings(
        cls, settings: Settings, policy: Policy | None = None, **options: Any
    ) -> RevocationListener:
        """A listener of ``settings.topics.revocations``; entries live as long as the policy's
        longest absolute timeout unless ``max_lifetime_s`` is given."""
        if "max_lifetime_s" not in options:
            if policy is None:
                path = settings.policy_file
                policy = load_policy(path) if path is not None else default_policy()
            options["max_lifetime_s"] = policy.max_absolute
        options = {**KafkaSecurity.from_settings(settings.kafka).librdkafka(), **options}
        return cls(settings.kafka.bootstrap_servers, settings.topics.revocations, **options)

    @staticmethod
    def _consumer_config(bootstrap_servers: str, config: dict[str, Any]) -> dict[str, Any]:
        return {
            "bootstrap.servers": bootstrap_servers,
            # Required by the client, never joined: partitions are assigned, offsets never stored.
            "group.id": f"sessionwarden-listener-{uuid.uuid4().hex[:12]}",
            "client.id": "sessionwarden-listener",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Fell behind the log start (retention): resume at the oldest record still kept.
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
            "reconnect.backoff.max.ms": 1000,
            "log_level": 4,
            **config,
        }

    def _on_client_error(self, err: KafkaError) -> None:
        reason = explain_refusal(err)
        if reason is not None:
            if self._refused is None:
                log.error(
                    "revocation listener refused", extra={"topic": self.topic, "reason": reason}
                )
            self._refused = reason

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0, background: bool = True) -> None:
        """Assign every partition from the beginning, capture the end offsets the bootstrap must
        reach, and start tailing in a thread (``background=False``: the caller drives
        ``step()``). Raises ListenerError if the topic is unknown or no broker answers."""
        if self._running:
            return
        try:
            meta = self._consumer.list_topics(self.topic, timeout=timeout)
        except KafkaException as exc:
            self._consumer.poll(0)  # serves error_cb: a refused login or TLS handshake
            why = self._refused or exc
            raise ListenerError(f"no metadata for {self.topic} within {timeout:g}s: {why}") from exc
        found = meta.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            why = found.error if found is not None else "unknown topic"
            raise ListenerError(f"cannot listen to {self.topic}: {why}")
        partitions = sorted(found.partitions)
        tps = [TopicPartition(self.topic, p) for p in partitions]
        self._tps = tps
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        if not self._staleness.first(tps, timeout):
            raise ListenerError(f"no end offsets for {self.topic} within {timeout:g}s")
        self._started_at = self._read_at = self._admin_built_at = self._monotonic()
        self._running = True
        if background:
            self._thread = threading.Thread(
                target=self._run, name="sessionwarden-revocation-listener", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step()
        except Exception:
            log.exception(
                "revocation listener stopped by an unexpected error", extra={"topic": self.topic}
            )
        finally:
            self._running = False

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and close the consumer. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._running = False
        if not self._closed:
            self._closed = True
            self._consumer.close()

    stop = close

    def __enter__(self) -> RevocationListener:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def add_revocation_callback(self, callback: Callable[[Revocation], None]) -> None:
        """Also call ``callback`` with every revocation applied, after ``on_revocation`` (on
        the listener thread, like it: it must not block). RevocationMiddleware subscribes so
        to close WebSockets the moment their session is revoked."""
        self._revocation_callbacks.append(callback)

    # -- queries (any thread) -------------------------------------------------------------

    @property
    def fail_closed(self) -> bool:
        return self._fail_closed

    @property
    def max_lifetime_s(self) -> float:
        return self._set.max_lifetime_s

    def is_revoked(self, tenant: str, session_id: str) -> bool:
        """True if the tenant's session is revoked; in fail-closed mode also while unhealthy."""
        if self._fail_closed and not self.healthy():
            return True
        return self._set.contains(tenant, session_id) or self._holds.holds(tenant)

    def revocation(self, tenant: str, session_id: str) -> RevokedEntry | None:
        """The entry for a revoked session of the tenant, or of its tenant's hold (regardless
        of health)."""
        entry = self._set.get(tenant, session_id)
        if entry is None and self._holds.holds(tenant):
            hold = self._holds.get(tenant)
            if hold is not None:
                return RevokedEntry(hold.expires_at, hold.revocation_id, "operator")
        return entry

    def tenant_held(self, tenant: str) -> bool:
        """A mass revocation of the tenant is being applied: every session of it is refused."""
        return self._holds.holds(tenant)

    def bind(self, tenant: str) -> TenantView:
        """A view for a single-tenant service: ``is_revoked(session_id)`` in ``tenant``."""
        return TenantView(self, tenant)

    def snapshot(self) -> dict[SessionKey, RevokedEntry]:
        return self._set.snapshot()

    def __len__(self) -> int:
        return len(self._set)

    def ready(self) -> bool:
        """The bootstrap has read up to the end offsets captured at start."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def staleness(self) -> float:
        """Seconds since the listener last knew it had applied everything (inf: never)."""
        return self._staleness.age()

    def failing_probes(self) -> int:
        """End-offset probes failed in a row (0: the last one answered)."""
        return self._staleness.failures

    def healthy(self) -> bool:
        """Running (a dead background thread counts as not running, at once), bootstrapped,
        and current within the staleness budget."""
        thread = self._thread
        if thread is not None and not thread.is_alive():
            return False
        return self._running and self.staleness() <= self.staleness_budget_s

    # -- the loop (listener thread) -------------------------------------------------------

    def step(self, poll_timeout: float = 0.1) -> int:
        """One iteration: apply a batch, check freshness, expire old entries, report health.
        Returns how many records were read."""
        # poll() returns as soon as a record is there (consume() would wait for a full batch
        # or the timeout); whatever else has arrived is then taken without waiting.
        first = self._consumer.poll(poll_timeout)
        msgs = [] if first is None else [first, *self._consumer.consume(_BATCH - 1, 0)]
        now = self._clock()
        for msg in msgs:
            self._apply(msg, now)
        self._check_freshness()
        self._holds.release(self._staleness.fresh_as_of, now)
        self._recover()
        self.stats.expired += self._set.expire(now)
        self._report_health()
        return len(msgs)

    def _apply(self, msg: Message, now: float) -> None:
        if msg.error() is not None:
            log.debug("consumer event", extra={"topic": self.topic, **error_fields(msg.error())})
            return
        self._read_at = self._monotonic()
        offset = msg.offset()
        if offset is not None and offset >= 0:
            self._next[msg.partition() or 0] = offset + 1
        self.stats.records += 1
        try:
            record = decode_revocation_record(msg.value())
        except DecodeError as exc:
            self.stats.skipped += 1
            if msg.value() is not None:  # tombstones are expected on a compacted topic
                located = exc.at(msg.topic(), msg.partition(), msg.offset())
                log.warning(
                    "skipping an unreadable revocation record",
                    extra={"topic": located.topic, "partition": located.partition,
                           "offset": located.offset, "reason": exc.reason},
                )  # fmt: skip
            return
        if isinstance(record, Revocation):
            if not self._set.add(record, now):
                self.stats.expired += 1
                return
            self.stats.revocations += 1
            self._notify(self.on_revocation, record)
            for callback in self._revocation_callbacks:
                self._notify(callback, record)
        elif isinstance(record, TenantRevocation):
            if not self._holds.add(record, now, self._monotonic()):
                self.stats.expired += 1
                return
            self.stats.tenant_revocations += 1
        else:
            self.stats.revalidations += 1
            self._notify(self.on_revalidation, record)

    def _notify(self, callback: Callable[[Any], None] | None, record: object) -> None:
        if callback is None:
            return
        try:
            callback(record)
        except Exception:
            log.exception("revocation listener callback failed", extra={"callback": repr(callback)})

    def _probe_failed(self) -> None:
        self.stats.probes_failed += 1

    def _check_freshness(self) -> None:
        if self._staleness.check(self._consumer.position) and not self._ready.is_set():
            self._ready.set()
            log.info(
                "revocation set rebuilt",
                extra={"topic": self.topic, "revoked_sessions": len(self._set),
                       "records": self.stats.records},
            )  # fmt: skip

    # -- recovery (listener thread) -------------------------------------------------------

    def _recover(self) -> None:
        """Rebuild what a frozen, restarted or re-elected broker left stale; see the module
        docstring. Each step is bounded in time, so none of them repeats in a loop."""
        st = self._staleness
        now = self._monotonic()
        since = st.failing_since
        if since is None:
            self._failures_at_rebuild = 0
        if since is not None and st.failures >= 2 and self._refreshed_for != since:
            self._refreshed_for = since
            self._refresh_metadata(st.failures)
        if (
            since is not None
            and st.failures >= 3
            and st.failures > self._failures_at_rebuild  # the current client failed too
            and now - max(since, self._admin_built_at) >= self.rebuild_after_s
        ):
            self._rebuild_admin(now, st.failures, now - since)
        behind = st.behind_since
        if behind is not None and now - max(behind, self._read_at) >= self.rebuild_after_s:
            self._rebuild_consumer(now, now - behind)

    def _refresh_metadata(self, failures: int) -> None:
        """Ask the admin client for the topic's metadata: it then asks the partitions' current
        leaders (a leader epoch moved on by a restart or re-election is learnt)."""
        self.stats.metadata_refreshes += 1
        log.info(
            "revocation listener refreshing its metadata",
            extra={"topic": self.topic, "failed_probes": failures},
        )
        list_topics = getattr(self._admin, "list_topics", None)
        if list_topics is None:
            return
        try:
            list_topics(self.topic, timeout=min(1.0, self.probe_interval_s))
        except KafkaException as exc:
            log.debug("metadata refresh failed", extra={"topic": self.topic, **error_fields(exc)})

    def _rebuild_admin(self, now: float, failures: int, failing_s: float) -> None:
        self.stats.admin_rebuilds += 1
        self._admin_built_at = now
        self._failures_at_rebuild = failures
        first = self.stats.admin_rebuilds == 1 or failures <= 3
        (log.warning if first else log.debug)(
            "revocation listener rebuilding its admin client: end-offset probes keep failing",
            extra={"topic": self.topic, "failed_probes": failures,
                   "failing_s": round(failing_s, 3), "rebuilds": self.stats.admin_rebuilds},
        )  # fmt: skip
        self._admin = self._admin_factory(self._admin_conf)
        self._staleness.replace_admin(self._admin)

    def _rebuild_consumer(self, now: float, behind_s: float) -> None:
        """A new consumer, assigned where the old one was: its position where it has one, else
        just after the last record read, else the beginning (nothing was read there)."""
        self.stats.consumer_rebuilds += 1
        self._read_at = now
        at = {
            tp.partition: tp.offset for tp in self._consumer.position(self._tps) if tp.offset >= 0
        }
        resume = [
            TopicPartition(self.topic, tp.partition,
                           at.get(tp.partition, self._next.get(tp.partition, OFFSET_BEGINNING)))
            for tp in self._tps
        ]  # fmt: skip
        log.warning(
            "revocation listener rebuilding its consumer: behind the end offsets and reading "
            "nothing",
            extra={"topic": self.topic, "behind_s": round(behind_s, 3),
                   "rebuilds": self.stats.consumer_rebuilds},
        )  # fmt: skip
        old = self._consumer
        self._consumer = self._consumer_factory(self._consumer_conf)
        self._consumer.assign(resume)
        try:
            old.close()
        except Exception:
            log.debug("closing the old consumer failed", extra={"topic": self.topic})

    def _report_health(self) -> None:
        now = self._monotonic()
        ready = self._ready.is_set()
        waited = now - self._started_at
        self._health_log.report(self.healthy(), ready, now, waited, self.staleness())
