"""The metrics server over real HTTP on loopback: endpoints, status codes, the bearer token."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from schemas.errors import ConfigError
from streams.observe.progress import Progress
from streams.observe.server import MetricsServer, serve_metrics
from streams.settings import load_settings
from tests.integration.scrape import get, probe


def _server(token: str = "") -> tuple[MetricsServer, Progress, Counter]:
    registry = CollectorRegistry()
    counter = Counter("sessionwarden_test_things", "things", registry=registry)
    progress = Progress(stall_s=30, restore_budget_s=60, max_lag=0)
    return MetricsServer("127.0.0.1", 0, registry, progress, token).start(), progress, counter


def test_metrics_health_and_readiness_are_served() -> None:
    """Prometheus scrapes the registry; probes get 200 or 503 with the reason in JSON."""
    server, progress, counter = _server()
    base = f"http://127.0.0.1:{server.port}"
    try:
        counter.inc(3)
        status, body = get(f"{base}/metrics")
        assert 200 == status
        assert "sessionwarden_test_things_total 3.0" in body.decode()
        assert (503, {"ok": False, "status": "not assigned yet"}) == probe(base, "/readyz")
        progress.restore_end()
        assert (200, {"ok": True, "status": "ok"}) == probe(base, "/readyz")
        assert 200 == probe(base, "/healthz")[0]
        assert 404 == get(f"{base}/tables")[0]
    finally:
        server.close()


def test_a_token_is_required_when_configured() -> None:
    """Off loopback, metrics and probes answer only to the bearer token."""
    server, _, _ = _server(token="s3cret")
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert 401 == get(f"{base}/metrics")[0]
        assert 401 == get(f"{base}/healthz", token="wrong")[0]
        assert 200 == get(f"{base}/metrics", token="s3cret")[0]
    finally:
        server.close()


def test_a_non_loopback_host_without_a_token_is_refused() -> None:
    """Metrics never listen beyond the host unauthenticated."""
    with pytest.raises(ConfigError, match="metrics_token"):
        load_settings(metrics_host="0.0.0.0")


def test_a_taken_port_does_not_stop_the_process() -> None:
    """Enforcement goes on without its endpoint (the missing scrape is what alerts)."""
    server, _, _ = _server()
    try:
        settings = load_settings()
        assert serve_metrics(settings, server.port, CollectorRegistry()) is None
    finally:
        server.close()
