"""The metrics server over real HTTP on loopback: endpoints, status codes, the bearer token."""

from __future__ import annotations

import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from sessionwarden.config.settings import load_settings
from sessionwarden.errors import ConfigError
from sessionwarden.ops.progress import Progress
from sessionwarden.ops.server import MAX_CONNECTIONS, MetricsServer, serve_metrics
from tests.integration.harness import Endpoint
from tests.integration.scrape import get, probe

TOKEN = "a-test-token-of-24-chars"


def _server(token: str = TOKEN) -> tuple[MetricsServer, Progress, Counter]:
    registry = CollectorRegistry()
    counter = Counter("sessionwarden_test_things", "things", registry=registry)
    progress = Progress(stall_s=30, max_lag=0)
    return MetricsServer("127.0.0.1", 0, registry, progress, token).start(), progress, counter


def test_metrics_health_and_readiness_are_served() -> None:
    """Prometheus scrapes the registry; probes get 200 or 503 with the reason in JSON."""
    server, progress, counter = _server()
    at = Endpoint(f"http://127.0.0.1:{server.port}", TOKEN)
    try:
        counter.inc(3)
        status, body = get(f"{at.base}/metrics", TOKEN)
        assert 200 == status
        assert "sessionwarden_test_things_total 3.0" in body.decode()
        assert (503, {"ok": False, "status": "not assigned yet"}) == probe(at, "/readyz")
        progress.restore_begin([2])
        assert (503, {"ok": False, "status": "restoring", "partitions": [2]}) == probe(
            at, "/readyz"
        )
        progress.restore_end([2])
        assert 503 == probe(at, "/readyz")[0]  # lag not measured since the restore
        progress.lag({2: 0})
        assert (200, {"ok": True, "status": "ok"}) == probe(at, "/readyz")
        assert 200 == probe(at, "/healthz")[0]
        assert 404 == get(f"{at.base}/tables", TOKEN)[0]
    finally:
        server.close()


def test_every_endpoint_needs_the_token() -> None:
    """Metrics and probes answer only to the bearer token, on loopback too."""
    server, _, _ = _server()
    base = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/metrics", "/healthz", "/readyz", "/nothing"):
            assert 401 == get(f"{base}{path}")[0]
            assert 401 == get(f"{base}{path}", token="wrong-token-of-24-chars!")[0]
        assert 200 == get(f"{base}/metrics", token=TOKEN)[0]
    finally:
        server.close()


def test_a_generated_token_is_written_owner_only_and_only_its_path_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a token file, the process makes one, writes it 0600 and logs where."""
    settings = load_settings(metrics_token_dir=tmp_path)
    caplog.set_level("INFO", logger="sessionwarden.ops.server")
    server = serve_metrics(settings, 0, CollectorRegistry(), None, "enforcer")
    assert server is not None
    try:
        path = tmp_path / f"enforcer-{server.port}.metrics-token"
        assert server.token_file == path
        assert 0o600 == stat.S_IMODE(path.stat().st_mode)
        token = path.read_text().strip()
        assert len(token) >= 16
        [record] = [r for r in caplog.records if r.getMessage() == "metrics serving"]
        assert str(path) == record.__dict__["token_file"]
        assert token not in caplog.text
        base = f"http://127.0.0.1:{server.port}"
        assert 401 == get(f"{base}/metrics")[0]
        assert 200 == get(f"{base}/metrics", token=token)[0]
    finally:
        server.close()
    assert not path.exists(), "a generated token outlived its server"


def test_a_token_file_setting_is_used_and_a_short_token_refused(tmp_path: Path) -> None:
    given = tmp_path / "metrics.token"
    given.write_text(f"{TOKEN}\n")
    settings = load_settings(metrics_token_file=given, metrics_token_dir=tmp_path / "unused")
    server = serve_metrics(settings, 0, CollectorRegistry(), None, "detect")
    assert server is not None
    try:
        assert given == server.token_file
        assert not (tmp_path / "unused").exists()
        assert 200 == get(f"http://127.0.0.1:{server.port}/metrics", token=TOKEN)[0]
    finally:
        server.close()
    assert given.exists(), "the operator's token file is not the server's to remove"
    given.write_text("short\n")
    with pytest.raises(ConfigError, match="16"):
        serve_metrics(settings, 0, CollectorRegistry(), None, "detect")


def test_a_taken_port_does_not_stop_the_process(tmp_path: Path) -> None:
    """Enforcement goes on without its endpoint (the missing scrape is what alerts)."""
    server, _, _ = _server()
    try:
        settings = load_settings(metrics_token_dir=tmp_path)
        assert serve_metrics(settings, server.port, CollectorRegistry(), None, "x") is None
    finally:
        server.close()


def _server_threads(baseline: set[threading.Thread]) -> int:
    return sum(1 for t in threading.enumerate() if t not in baseline)


def test_idle_connections_hold_a_bounded_number_of_threads_and_a_scrape_still_answers() -> None:
    """An unauthenticated client holding 341 idle connections used to hold 341 threads."""
    server, _, _ = _server()
    baseline = set(threading.enumerate())
    idle: list[socket.socket] = []
    peak = 0
    try:
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            peak = max(peak, _server_threads(baseline))
        deadline = time.monotonic() + 1.0  # watch the count while the server catches up
        while time.monotonic() < deadline:
            peak = max(peak, _server_threads(baseline))
        scraped = get(f"http://127.0.0.1:{server.port}/metrics", TOKEN)[0]
        assert (200, True) == (scraped, peak <= MAX_CONNECTIONS + 1), peak
    finally:
        for sock in idle:
            sock.close()
        server.close()


def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    """A connection that sends no request does not keep its thread."""
    registry = CollectorRegistry()
    server = MetricsServer("127.0.0.1", 0, registry, None, TOKEN, idle_timeout_s=0.5).start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        started = time.monotonic()
        assert b"" == sock.recv(1)  # closed by the server, not by the 5 s client timeout
        assert time.monotonic() - started < 3
        sock.close()
    finally:
        server.close()
