"""The dashboard process's /metrics, /healthz and /readyz, scraped while its feed reads."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.outputs import Alert, AlertEvidence
from sessionwarden.testing.serve import ServerThread
from sessionwarden.web.dashboard.service import create_app
from tests.integration.harness import Endpoint, wait_until
from tests.integration.scrape import get, probe, scrape, value

NS = "sessionwarden_dashboard"


def _alert() -> Alert:
    now = datetime.now(UTC)
    return Alert(
        alert_id=uuid.uuid4(), kind="ended_session_used", severity="high", user_id="u1",
        tenant="acme", first_seen=now, last_seen=now, emitted_at=now,
        evidence=AlertEvidence(), summary="u1 used an ended session",
    )  # fmt: skip


def test_the_feeds_counters_move_and_every_endpoint_needs_the_token(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """Records the feed uses and records it skips are counted; the probes follow its loop."""
    settings = settings_factory()
    caplog.set_level("INFO", logger="sessionwarden.ops.server")
    with ServerThread(create_app(settings, "dashboard-token-" + uuid.uuid4().hex)):

        def serving() -> Endpoint | None:
            for r in caplog.records:
                if r.getMessage() == "metrics serving":
                    token = Path(r.__dict__["token_file"]).read_text().strip()
                    return Endpoint(f"http://{r.__dict__['host']}:{r.__dict__['port']}", token)
            return None

        at: Endpoint = wait_until(serving, 30, "the dashboard's metrics server")
        assert 401 == get(f"{at.base}/metrics")[0]
        wait_until(lambda: 200 == probe(at, "/readyz")[0], 30, "the dashboard to be ready")
        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
        producer.produce(settings.topics.alerts, encode(_alert()), b"u1")
        producer.produce(settings.topics.alerts, b'{"type": "alert"}', b"u1")  # invalid
        producer.produce(settings.topics.alerts, b"\xff\xfenot json", b"u1")
        assert 0 == producer.flush(10)

        def counted() -> object:
            now = scrape(at)
            skipped = value(now, f"{NS}_records_skipped_total") or 0
            return now if value(now, f"{NS}_records_total") and skipped >= 2 else None

        samples = wait_until(counted, 20, "the feed's records to be counted")
        assert 1 == value(samples, f"{NS}_records_total")
        assert 2 == value(samples, f"{NS}_records_skipped_total")
        assert 200 == probe(at, "/healthz")[0]
