"""Metrics and probes for any other long-running process in one object: its counters (a dict
it already keeps) exported at scrape time, /healthz from its loop's steps, /readyz once it
says it is ready. For the PostgreSQL sink, say::

    observer = ServiceObserver(settings, port, "sessionwarden_sink", lambda: sink.stats)
    # its token file: <metrics_token_dir or the working directory>/sink-<port>.metrics-token
    observer.start()
    ...  observer.ready() once assigned; observer.step() every loop iteration
    observer.close()

Counters are named ``<namespace>_<key>_total``; keys must be bounded (never an id).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from sessionwarden.config.settings import Settings
from sessionwarden.ops.progress import Progress
from sessionwarden.ops.server import MetricsServer, serve_metrics

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class CountersCollector(Collector):
    """A process's own monotonically increasing counters, read when Prometheus scrapes."""

    def __init__(self, namespace: str, counters: Callable[[], Mapping[str, float]]) -> None:
        if not _NAME.match(namespace):
            raise ValueError(f"not a metric namespace: {namespace!r}")
        self.namespace = namespace
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        for key, value in sorted(dict(self._counters()).items()):
            if _NAME.match(key):
                name = f"{self.namespace}_{key}"
                yield CounterMetricFamily(name, f"{key} so far", value=value)


class ServiceObserver:
    def __init__(
        self,
        settings: Settings,
        port: int,
        namespace: str,
        counters: Callable[[], Mapping[str, float]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.port = port
        self.registry = registry if registry is not None else CollectorRegistry()
        self.namespace = namespace
        self.registry.register(CountersCollector(namespace, counters))
        self.progress = Progress(
            settings.metrics.health_stall_s,
            settings.metrics.ready_max_lag_records,
            reports_lag=False,
        )
        self.server: MetricsServer | None = None

    def start(self) -> None:
        service = self.namespace.removeprefix("sessionwarden_")
        self.server = serve_metrics(self.settings, self.port, self.registry, self.progress, service)

    def step(self) -> None:
        self.progress.step()

    def ready(self) -> None:
        self.progress.restore_end()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
