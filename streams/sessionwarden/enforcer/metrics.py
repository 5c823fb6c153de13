"""The enforcer's metrics and health, fed by a handful of calls from its Kafka shell, each made
after the fact (an event's outcome, a commit, an abort): no metric sits in a decision.

:class:`EnforcerObserver` does nothing (metrics disabled, and the benchmark's baseline);
:class:`EnforcerMetrics` records into a Prometheus registry. Per-event work is a dict
increment: counters reach Prometheus once per batch, so the hot path takes no lock. Labels
are bounded sets (event type, outcome, reason, error name, partition number): never a
session id, user id or tenant.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sessionwarden.config.settings import Settings, TopicNames
from sessionwarden.ops.observer import EnforcerObserver, Outcome, Partition, Restored, Watermarks
from sessionwarden.ops.progress import Progress
from sessionwarden.ops.server import MetricsServer, serve_metrics

# Deadline fired -> its revocation committed: sub-second resolution where it matters.
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RESTORE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
LAG_REFRESH_S = 1.0
LIVE_REFRESH_S = 10.0  # counting live sessions walks every session of the partition
# The enforcer's watched consumers (kafka.stall): the input, the operator commands and the
# changelog restore.
STALL_CONSUMERS = ("input", "commands", "restore")


def observer_for(settings: Settings, topics: TopicNames) -> EnforcerObserver:
    """Prometheus metrics when enabled in the settings, else the silent observer."""
    if not settings.metrics.enabled:
        return EnforcerObserver()
    return EnforcerMetrics(settings, topics)


class EnforcerMetrics(EnforcerObserver):
    """Counters, histograms and gauges of one enforcer process, with its health endpoints."""

    def __init__(
        self,
        settings: Settings,
        topics: TopicNames,
        registry: CollectorRegistry | None = None,
        wall: Any = time.time,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.registry = registry if registry is not None else CollectorRegistry()
        self.progress = Progress(
            settings.metrics.health_stall_s,
            settings.metrics.ready_max_lag_records,
        )
        self._wall = wall
        self._server: MetricsServer | None = None
        self._applied: dict[str, int] = {}
        self._events: dict[tuple[str, str], int] = {}
        self._dead: dict[str, int] = {}
        self._forwarded = 0
        self._revoked: dict[str, int] = {}
        self._delays: list[float] = []
        self._lag_at = 0.0
        self._live_at = 0.0
        self._lag_labels: set[str] = set()
        self._owned: set[int] = set()  # partitions restored and not revoked since
        self._define(self.registry)

    def _define(self, r: CollectorRegistry) -> None:
        ns = "sessionwarden_enforcer"
        self.events_total = Counter(
            f"{ns}_events", "Auth events read, by type and outcome", ["type", "outcome"], registry=r
        )
        self.dead_letters_total = Counter(
            f"{ns}_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=r
        )
        self.revocations_total = Counter(
            f"{ns}_revocations", "Sessions revoked, committed", ["reason"], registry=r
        )
        self.fire_delay = Histogram(
            f"{ns}_revocation_delay_seconds",
            "From a session's end (deadline or cause) to its revocation being committed",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.batches_total = Counter(f"{ns}_batches", "Transactions committed", registry=r)
        self.batch_seconds = Histogram(
            f"{ns}_batch_duration_seconds",
            "One batch, consume to commit",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            f"{ns}_commit_duration_seconds",
            "send_offsets + commit_transaction",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.aborts_total = Counter(
            f"{ns}_transaction_aborts", "Aborted transactions, by error", ["cause"], registry=r
        )
        self.recoveries_total = Counter(
            f"{ns}_recoveries",
            "Client rebuilds and restores after a transaction's outcome was lost, by error",
            ["cause"],
            registry=r,
        )
        self.fetch_stalls_total = Counter(
            f"{ns}_fetch_stalls",
            "Consumers found standing still with records waiting, sought back or reopened",
            ["consumer"],
            registry=r,
        )
        for consumer in STALL_CONSUMERS:  # each series exists from the start: rate() sees the first
            self.fetch_stalls_total.labels(consumer)
        self.forwarded_total = Counter(
            f"{ns}_forwarded_records",
            "Records on the wrong partition for their key, forwarded to the right one",
            registry=r,
        )
        self.lag_records = Gauge(
            f"{ns}_consumer_lag_records", "Input records not yet read", ["partition"], registry=r
        )
        self.lag_seconds = Gauge(
            f"{ns}_consumer_lag_seconds",
            "Age (broker append time) of the newest record read, while records are waiting",
            ["partition"],
            registry=r,
        )
        self.live_sessions = Gauge(f"{ns}_live_sessions", "Sessions alive", registry=r)
        self.partitions = Gauge(f"{ns}_assigned_partitions", "Input partitions owned", registry=r)
        self.restoring = Gauge(
            f"{ns}_restoring", "Partitions restoring from the changelog", registry=r
        )
        self.restore_seconds = Histogram(
            f"{ns}_restore_duration_seconds",
            "Restores of newly assigned partitions, one per partition",
            buckets=RESTORE_BUCKETS,
            registry=r,
        )
        self.restore_records_total = Counter(
            f"{ns}_restore_records", "Changelog records restored", registry=r
        )
        self.last_step = Gauge(
            f"{ns}_last_step_timestamp_seconds", "When the loop last began a step", registry=r
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = serve_metrics(
            self.settings,
            self.settings.metrics.enforcer_port,
            self.registry,
            self.progress,
            "enforcer",
        )

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- the hot path: plain dict increments ----------------------------------------------

    def step(self) -> float:
        assert self.progress is not None
        self.last_step.set(self._wall())
        return self.progress.step()

    def applied(self, event_type: str, outcome: Outcome) -> None:
        # The common case (applied) is one dict increment per event type.
        kind = outcome.kind
        if kind == "applied":
            applied = self._applied
            applied[event_type] = applied.get(event_type, 0) + 1
            return
        key = (event_type, kind)
        self._events[key] = self._events.get(key, 0) + 1

    def dead_lettered(self, reason: str) -> None:
        self._dead[reason] = self._dead.get(reason, 0) + 1

    def forwarded(self) -> None:
        self._forwarded += 1

    def revoked(self, revocation: Mapping[str, Any]) -> None:
        reason = revocation["reason"]
        self._revoked[reason] = self._revoked.get(reason, 0) + 1
        self._delays.append(self._wall() - revocation["effective_at"].timestamp())

    # -- once per batch -------------------------------------------------------------------

    def committed(self, started: float) -> None:
        self.commit_seconds.observe(time.monotonic() - started)

    def batch_done(
        self, events: int, started: float, parts: Mapping[int, Partition], consumer: Watermarks
    ) -> None:
        now = time.monotonic()
        self.batch_seconds.observe(now - started)
        self.batches_total.inc()
        self._flush()
        if now - self._lag_at >= LAG_REFRESH_S:
            self._lag_at = now
            self._refresh_lag(parts, consumer)
        if now - self._live_at >= LIVE_REFRESH_S:
            self._live_at = now
            self.live_sessions.set(sum(rt.enforcer.state.live_sessions() for rt in parts.values()))

    def _flush(self) -> None:
        if self._applied:
            for kind, n in self._applied.items():
                self.events_total.labels(kind, "applied").inc(n)
            self._applied.clear()
        if self._events:
            for (kind, outcome), n in self._events.items():
                self.events_total.labels(kind, outcome).inc(n)
            self._events.clear()
        for table, counter in (
            (self._dead, self.dead_letters_total),
            (self._revoked, self.revocations_total),
        ):
            if table:
                for reason, n in table.items():
                    counter.labels(reason).inc(n)
                table.clear()
        if self._forwarded:
            self.forwarded_total.inc(self._forwarded)
            self._forwarded = 0
        if self._delays:
            for delay in self._delays:
                self.fire_delay.observe(max(0.0, delay))
            self._delays.clear()

    def _refresh_lag(self, parts: Mapping[int, Partition], consumer: Watermarks) -> None:
        from confluent_kafka import TopicPartition

        wall = self._wall()
        behind: dict[int, int] = {}
        unknown: list[int] = []
        topic = self.topics.input
        for p, rt in parts.items():
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            if high is None or high < 0:  # not known (OFFSET_INVALID): unknown, not caught up
                unknown.append(p)
                continue
            # The high watermark counts transaction markers: one past the last record read.
            lag = max(0, high - max(rt.next_offset, rt.position))
            behind[p] = lag
            label = str(p)
            self.lag_records.labels(label).set(lag)
            age = (
                wall - rt.enforcer.state.received_watermark
                if lag and rt.enforcer.state.received_watermark
                else 0
            )
            self.lag_seconds.labels(label).set(max(0.0, age))
        self._drop_lag({str(p) for p in behind})
        assert self.progress is not None
        self.progress.lag(behind, unknown)

    def _drop_lag(self, keep: set[str]) -> None:
        """Remove the lag series of partitions no longer owned."""
        for label in self._lag_labels - keep:
            self.lag_records.remove(label)
            self.lag_seconds.remove(label)
        self._lag_labels = keep

    # -- failures and rebalances ----------------------------------------------------------

    def aborted(self, cause: str) -> None:
        self.aborts_total.labels(cause).inc()
        self._forget_batch()

    def _forget_batch(self) -> None:
        """The open batch is read again: its events count when it commits."""
        self._applied.clear()
        self._events.clear()
        self._dead.clear()
        self._revoked.clear()
        self._delays.clear()
        self._forwarded = 0

    def recovering(self, cause: str) -> None:
        """The clients are being rebuilt: every partition is given up, to be restored again."""
        assert self.progress is not None
        self.recoveries_total.labels(cause).inc()
        self._forget_batch()
        self.progress.recovering()
        self.restoring.set(0)
        self._owned.clear()
        self.partitions.set(0)
        self.live_sessions.set(0)
        self._drop_lag(set())

    def fetch_stalled(self, consumer: str) -> None:
        self.fetch_stalls_total.labels(consumer).inc()

    def restore_begin(self, partitions: list[int]) -> None:
        assert self.progress is not None
        self.progress.restore_begin(partitions)
        self.restoring.set(self.progress.restoring_count())

    def restore_end(self, done: Sequence[tuple[int, Restored]]) -> None:
        assert self.progress is not None
        now = time.monotonic()
        for _, pending in done:
            self.restore_seconds.observe(now - pending.started)
            self.restore_records_total.inc(pending.records)
        self.progress.restore_end([p for p, _ in done])
        self.restoring.set(self.progress.restoring_count())
        self._owned.update(p for p, _ in done)
        self.partitions.set(len(self._owned))
        self._live_at = 0.0  # count the restored sessions at the next batch
        self._lag_at = 0.0  # and measure their lag, which readiness waits for

    def partitions_revoked(self, partitions: list[int]) -> None:
        assert self.progress is not None
        self.progress.revoked(partitions)
        self.restoring.set(self.progress.restoring_count())
        self._owned.difference_update(partitions)
        self.partitions.set(len(self._owned))
        self._drop_lag(self._lag_labels - {str(p) for p in partitions})
        self._live_at = 0.0
        if not self._owned:
            self.live_sessions.set(0)
