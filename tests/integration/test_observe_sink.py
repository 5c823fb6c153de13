"""The PostgreSQL sink's /metrics, /healthz and /readyz, scraped from a real running sink."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.integration.harness import EnforcerProcess, login_doc, wait_until
from tests.integration.scrape import get, probe, scrape, value
from tests.pg import SinkProcess

pytestmark = pytest.mark.postgres

NS = "sessionwarden_sink"


def test_the_sinks_counters_move_as_revocations_are_stored(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """Ready once assigned; a stored revocation moves the records and rows series; every
    endpoint needs the token the sink wrote."""
    settings = settings_factory()
    sid = f"obs-pg-{uuid.uuid4().hex[:8]}"
    with (
        EnforcerProcess(settings) as enforcer,
        SinkProcess(settings, pg_sandbox.sink_dsn) as sink,
    ):
        enforcer.wait_assigned()
        sink.wait_assigned()
        at = sink.metrics_url()
        assert 401 == get(f"{at.base}/metrics")[0]
        assert 401 == get(f"{at.base}/readyz")[0]
        wait_until(lambda: 200 == probe(at, "/readyz")[0], 30, "the sink to be ready")
        before = scrape(at)
        assert 0 == value(before, f"{NS}_rows_total")
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc(sid, "u-sink", time.time()))  # idle deadline in 3 s

        def stored() -> object:
            now = scrape(at)
            return now if value(now, f"{NS}_rows_total") else None

        after = wait_until(stored, 45, "the revocation to be stored and counted")
        assert 1 == value(after, f"{NS}_rows_total")
        assert 1 <= value(after, f"{NS}_records_total")
        assert 0 == value(after, f"{NS}_undecodable_total")
        assert 200 == probe(at, "/healthz")[0]
