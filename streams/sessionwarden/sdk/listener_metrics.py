"""Opt-in metrics for a service that uses :class:`RevocationListener`.

Read at scrape time from the listener's public state, so the listener itself does nothing
extra::

    from prometheus_client import REGISTRY
    from sessionwarden.sdk.listener_metrics import ListenerCollector

    REGISTRY.register(ListenerCollector(listener))  # served by the service's own /metrics

Several listeners in one process are told apart by their topic (a bounded, operator-chosen
label; never a session or user).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

NS = "sessionwarden_listener"
COUNTED = (
    "records", "revocations", "revalidations", "skipped", "expired", "probes_failed",
    "metadata_refreshes", "admin_rebuilds", "consumer_rebuilds",
)  # fmt: skip


class ListenerStatsLike(Protocol):
    records: int
    revocations: int
    revalidations: int
    skipped: int
    expired: int
    probes_failed: int
    metadata_refreshes: int
    admin_rebuilds: int
    consumer_rebuilds: int


class ListenerLike(Protocol):
    topic: str
    staleness_budget_s: float

    @property
    def stats(self) -> ListenerStatsLike: ...
    def __len__(self) -> int: ...
    def staleness(self) -> float: ...
    def healthy(self) -> bool: ...
    def ready(self) -> bool: ...
    def failing_probes(self) -> int: ...


class ListenerCollector(Collector):
    """Staleness, set size, health and counters of one or more revocation listeners."""

    def __init__(self, *listeners: ListenerLike) -> None:
        self._listeners = listeners

    def collect(self) -> Iterator[Metric]:
        labels = ["topic"]
        staleness = GaugeMetricFamily(
            f"{NS}_staleness_seconds",
            "Seconds since the listener last knew it had applied everything (+Inf: never)",
            labels=labels,
        )
        budget = GaugeMetricFamily(
            f"{NS}_staleness_budget_seconds", "Staleness above which it is unhealthy", labels=labels
        )
        size = GaugeMetricFamily(f"{NS}_revoked_sessions", "Entries in the set", labels=labels)
        healthy = GaugeMetricFamily(f"{NS}_healthy", "1 if current within budget", labels=labels)
        ready = GaugeMetricFamily(f"{NS}_ready", "1 once bootstrapped", labels=labels)
        failing = GaugeMetricFamily(
            f"{NS}_failing_probes",
            "End-offset probes failed in a row (0: the last one answered)",
            labels=labels,
        )
        counters = {
            name: CounterMetricFamily(f"{NS}_{name}", f"Listener {name}", labels=labels)
            for name in COUNTED
        }
        for listener in self._listeners:
            topic = [listener.topic]
            stale = listener.staleness()
            staleness.add_metric(topic, stale if math.isfinite(stale) else math.inf)
            budget.add_metric(topic, listener.staleness_budget_s)
            size.add_metric(topic, len(listener))
            healthy.add_metric(topic, 1.0 if listener.healthy() else 0.0)
            ready.add_metric(topic, 1.0 if listener.ready() else 0.0)
            failing.add_metric(topic, listener.failing_probes())
            for name, family in counters.items():
                family.add_metric(topic, getattr(listener.stats, name))
        yield from (staleness, budget, size, healthy, ready, failing, *counters.values())
