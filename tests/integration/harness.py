"""Processes and readers for integration tests: a real enforcer process, topic collectors,
and waiting on conditions with deadlines (never fixed sleeps). The harness itself is
sessionwarden.testing, shared with the benchmarks and the drill; this module adds the tests'
policy and the repository's paths."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.testing import services
from sessionwarden.testing.collector import COLLECTOR_STALL_S as COLLECTOR_STALL_S
from sessionwarden.testing.collector import Collector as Collector
from sessionwarden.testing.events import activity_doc as activity_doc
from sessionwarden.testing.events import login_doc as login_doc
from sessionwarden.testing.events import logout_doc as logout_doc
from sessionwarden.testing.events import parse_ts as parse_ts
from sessionwarden.testing.events import role_change_doc as role_change_doc
from sessionwarden.testing.services import Endpoint as Endpoint
from sessionwarden.testing.services import ServiceProcess as ServiceProcess
from sessionwarden.testing.services import service_env as service_env
from sessionwarden.testing.waiting import wait_until as wait_until

REPO = Path(__file__).resolve().parents[2]
FAST_POLICY = REPO / "tests/fixtures/policies/fast.toml"
LONG_POLICY = REPO / "tests/fixtures/policies/long.toml"
DETECT_POLICY = REPO / "tests/fixtures/policies/detect.toml"


def open_changelog_transaction(settings: Settings, partition: int) -> Producer:
    """A dead owner's transaction left open on one enforcer-state partition (read_committed
    restores of that partition wait for it); the caller aborts it with ``abort_transaction``."""
    zombie = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "transactional.id": f"zombie-{uuid.uuid4().hex[:8]}",
            "transaction.timeout.ms": 120_000,
            "log_level": 3,
        }
    )
    zombie.init_transactions(30)
    zombie.begin_transaction()
    zombie.produce(settings.topics.enforcer_state, b"{}", b"s:zombie", partition=partition)
    assert 0 == zombie.flush(10)
    return zombie


class EnforcerProcess(services.EnforcerProcess):
    """`sessionwarden enforce` in a subprocess, on the tests' fast policy unless told."""

    def __init__(
        self, settings: Settings, instance_id: str = "0", policy: Path = FAST_POLICY, **env: str
    ) -> None:
        super().__init__(settings, instance_id, policy=policy, cwd=REPO, **env)


class DetectProcess(ServiceProcess):
    """`python -m sessionwarden.detect` in a subprocess."""

    name = "detect worker"

    def __init__(self, settings: Settings, **env: str) -> None:
        super().__init__(
            ["-m", "sessionwarden.detect"],
            {**service_env(settings, DETECT_POLICY), **env},
            REPO,
        )

    def is_ready(self) -> bool:
        return any(
            m.get("msg") == "partitions assigned and recovered" and m.get("partitions")
            for m in self.messages()
        )


def wait_drained(
    settings: Settings,
    alerts: Collector,
    tag: str,
    timeout: float = 30,
    occurred_at: datetime | None = None,
) -> None:
    """Put one ended-session-used record at the end of every audit partition and wait for their
    alerts: the worker reads each partition in order, so everything before them is done. The
    records happen at ``occurred_at`` (default now): a time past the records under test moves
    each partition's clock there, and the detectors judge records that much behind it as too
    late for the state they had."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
    now = occurred_at or datetime.now(UTC)
    for p in range(settings.kafka.partitions):
        doc = {
            "type": "ended_session_used",
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "occurred_at": now,
            "user_id": f"sentinel-{tag}-{p}",
            "tenant": "acme",
            "session_id": "sentinel",
            "action": "sentinel",
            "session_state": "unknown",
        }
        producer.produce(
            settings.topics.audit, encode_dict(doc), doc["user_id"].encode(), partition=p
        )
    producer.flush(10)
    wanted = {f"sentinel-{tag}-{p}" for p in range(settings.kafka.partitions)}
    wait_until(
        lambda: wanted <= {d["user_id"] for d in alerts.docs()},
        timeout,
        f"the {tag} sentinel alerts",
    )
