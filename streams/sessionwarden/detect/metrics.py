"""The anomaly detectors' metrics and health, fed by the faust shell (sessionwarden/detect/app.py).

Health: a one-second faust timer beats :class:`Progress`; if the worker's event loop blocks,
the beats stop and /healthz turns red. Readiness: from a rebalance starting (tables
recovering) until it completes, the worker is not ready.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from sessionwarden.config.settings import Settings
from sessionwarden.ops.progress import Progress
from sessionwarden.ops.server import MetricsServer, serve_metrics

BEAT_INTERVAL_S = 1.0

# faust recovers the whole assignment at once: readiness waits for it as for one partition.
WHOLE_ASSIGNMENT = (-1,)


class DetectObserver:
    """The calls the detect shell makes; this base records nothing."""

    def event(self, kind: str) -> None:
        pass

    def skipped(self, reason: str) -> None:
        pass

    def alert(self, kind: str, severity: str) -> None:
        pass

    def withheld(self, kind: str) -> None:
        pass

    def beat(self) -> None:
        pass

    def commit_reread(self) -> None:
        pass

    def documents(self, held: int, expired: int, evicted: int) -> None:
        pass

    def rebalance_begin(self) -> None:
        pass

    def rebalance_end(self, partitions: int) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def detect_observer_for(settings: Settings) -> DetectObserver:
    return DetectMetrics(settings) if settings.metrics.enabled else DetectObserver()


class DetectMetrics(DetectObserver):
    """Counters of one detect worker, with its /metrics, /healthz and /readyz."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = r = registry if registry is not None else CollectorRegistry()
        # faust reports no lag here: the dashboard and Prometheus watch the group's lag.
        self.progress = Progress(
            settings.metrics.health_stall_s,
            settings.metrics.ready_max_lag_records,
            reports_lag=False,
        )
        self._server: MetricsServer | None = None
        ns = "sessionwarden_detect"
        self.events_total = Counter(f"{ns}_events", "Audit records judged", ["type"], registry=r)
        self.skipped_total = Counter(
            f"{ns}_skipped", "Audit records skipped", ["reason"], registry=r
        )
        self.alerts_total = Counter(f"{ns}_alerts", "Alerts sent", ["kind", "severity"], registry=r)
        self.withheld_total = Counter(
            f"{ns}_alerts_withheld", "Alerts withheld by their cooldown", ["kind"], registry=r
        )
        self.commit_rereads_total = Counter(
            f"{ns}_commit_rereads",
            "Audit partitions read again from their committed offset because faust could"
            " commit nothing more on them",
            registry=r,
        )
        self.documents_held = Gauge(
            f"{ns}_documents", "User documents held of the audit partitions read", registry=r
        )
        self.documents_expired_total = Counter(
            f"{ns}_documents_expired",
            "User documents removed because nothing in them could change a judgment any more",
            registry=r,
        )
        self.documents_evicted_total = Counter(
            f"{ns}_documents_evicted",
            "User documents removed, still live, because the worker held its maximum",
            registry=r,
        )
        self.partitions = Gauge(f"{ns}_assigned_partitions", "Audit partitions owned", registry=r)
        self.recovering = Gauge(f"{ns}_recovering", "1 while a rebalance recovers", registry=r)
        self.last_beat = Gauge(
            f"{ns}_last_step_timestamp_seconds",
            "When the worker's event loop last ran its timer",
            registry=r,
        )

    def event(self, kind: str) -> None:
        self.events_total.labels(kind).inc()

    def skipped(self, reason: str) -> None:
        self.skipped_total.labels(reason).inc()

    def alert(self, kind: str, severity: str) -> None:
        self.alerts_total.labels(kind, severity).inc()

    def withheld(self, kind: str) -> None:
        self.withheld_total.labels(kind).inc()

    def commit_reread(self) -> None:
        self.commit_rereads_total.inc()

    def documents(self, held: int, expired: int, evicted: int) -> None:
        self.documents_held.set(held)
        self.documents_expired_total.inc(expired)
        self.documents_evicted_total.inc(evicted)

    def beat(self) -> None:
        self.progress.step()
        self.last_beat.set_to_current_time()

    def rebalance_begin(self) -> None:
        self.progress.restore_begin(WHOLE_ASSIGNMENT)
        self.recovering.set(1)

    def rebalance_end(self, partitions: int) -> None:
        self.partitions.set(partitions)
        self.recovering.set(0)
        self.progress.restore_end(WHOLE_ASSIGNMENT)

    def start(self) -> None:
        self._server = serve_metrics(
            self.settings, self.settings.metrics.detect_port, self.registry, self.progress, "detect"
        )

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
