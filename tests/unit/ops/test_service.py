"""A process's own counters dict, exported as Prometheus counters at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from sessionwarden.config.settings import Settings
from sessionwarden.ops.service_metrics import ServiceObserver


def test_counters_are_read_when_scraped_and_readiness_follows_the_process() -> None:
    """A sink exports what it already counts, without a call per record."""
    stats = {"records": 3, "rows": 2, "Bad Key": 1}
    registry = CollectorRegistry()
    observer = ServiceObserver(Settings(), 0, "sessionwarden_sink", lambda: stats, registry)
    stats["records"] += 4
    assert 7 == registry.get_sample_value("sessionwarden_sink_records_total")
    assert 2 == registry.get_sample_value("sessionwarden_sink_rows_total")
    assert not [m for m in registry.collect() if "Bad" in m.name]
    assert "not assigned yet" == observer.progress.readiness().reason
    observer.ready()
    observer.step()
    assert observer.progress.readiness().ok and observer.progress.health().ok
