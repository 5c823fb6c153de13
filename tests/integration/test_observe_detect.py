"""The detect worker's /metrics, /healthz and /readyz, scraped from a real running worker."""

from __future__ import annotations

import time

from confluent_kafka import Producer

from sessionwarden.config.settings import Settings
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import (
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    logout_doc,
    wait_until,
)
from tests.integration.scrape import probe, scrape, value
from tests.integration.test_detect import DetectProcess, env  # noqa: F401 - the fixture

NS = "sessionwarden_detect"


def test_alerts_and_skipped_records_move_their_series(
    env: tuple[Settings, EnforcerProcess, DetectProcess],  # noqa: F811 - the fixture
) -> None:
    """An operator sees alerts by kind and severity and skipped records by reason."""
    settings, _, detect = env
    base = detect.metrics_url()
    wait_until(lambda: 200 == probe(base, "/readyz")[0], 30, "the detect worker to be ready")
    assert 200 == probe(base, "/healthz")[0]
    alerts = Collector(settings.kafka.bootstrap_servers, settings.topics.alerts)
    now = time.time()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        pub.publish(login_doc("m-s", "m-user", now - 1, risk="low"))
        pub.publish(logout_doc("m-s", "m-user", now))
        pub.publish(activity_doc("m-s", "m-user", now + 0.5))  # after the logout: an alert
    poison = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
    poison.produce(settings.topics.audit, b"\xff\xfenot json", b"m-user")
    poison.flush(10)
    alert = wait_until(lambda: alerts.docs(user_id="m-user"), 30, "the alert")[0]
    alerts.close()

    def counted() -> object:
        samples = scrape(base)
        skipped = value(samples, f"{NS}_skipped_total", reason="undecodable")
        sent = value(samples, f"{NS}_alerts_total", kind=alert["kind"], severity=alert["severity"])
        return samples if skipped and sent else None

    samples = wait_until(counted, 15, "the alert and the skipped record to be counted")
    assert "ended_session_used" == alert["kind"]
    assert 1 == value(
        samples, f"{NS}_alerts_total", kind="ended_session_used", severity=alert["severity"]
    )
    assert 1 == value(samples, f"{NS}_skipped_total", reason="undecodable")
    assert 1 <= value(samples, f"{NS}_events_total", type="session_started")
    assert 1 <= value(samples, f"{NS}_events_total", type="ended_session_used")
    assert 200 == probe(base, "/healthz")[0]
