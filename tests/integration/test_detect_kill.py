"""SIGKILL the detect worker mid-stream and restart it: it alerts exactly as a worker that was
never killed, on the same audit records (same alert ids, kinds, severities, counts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.kafka.topics import delete_topics
from tests.integration.harness import Collector, DetectProcess, wait_drained, wait_until
from tests.unit.detect.factories import lifecycle

KILLABLE = {
    # Nothing is committed while a worker lives, so each restart reads every record again: the
    # widest window there is for judging a record against state written after it.
    "SESSIONWARDEN_DETECT_COMMIT_INTERVAL_S": "60",
    # The group gives a killed worker's partitions to its successor this soon (the default
    # 60 s would be most of the test).
    "SESSIONWARDEN_DETECT_SESSION_TIMEOUT_S": "6",
}


def audit_chunks(t0: float) -> list[list[Any]]:
    """Lifecycle records of 24 users in three chunks: churning sessions, expirations,
    grants, high-risk operations, uses of ended sessions; every detector and the cooldown act."""
    records = lifecycle(seed=7, users=24, length=450, t0=t0)
    return [records[:150], records[150:300], records[300:]]


def publish(settings: Settings, records: list[Any]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "partitioner": "murmur2_random",
            "log_level": 3,
        }
    )
    for record in records:
        producer.produce(settings.topics.audit, encode(record), record.user_id.encode())
    assert 0 == producer.flush(10)


def alerts_by_id(alerts: Collector) -> dict[str, set[bytes]]:
    """Alert id -> every distinct content delivered under it (all but the judging time)."""
    found: dict[str, set[bytes]] = {}
    for doc in alerts.docs():
        if not doc["user_id"].startswith("sentinel-"):
            body = orjson.dumps({k: v for k, v in doc.items() if k != "emitted_at"})
            found.setdefault(doc["alert_id"], set()).add(body)
    return found


@pytest.fixture
def two_deployments(
    settings_factory: Callable[..., Settings], admin: AdminClient
) -> Iterator[tuple[Settings, Settings]]:
    calm, killed = settings_factory(), settings_factory()
    try:
        yield calm, killed
    finally:
        for settings in (calm, killed):  # faust's changelogs carry the prefix too
            delete_topics(admin, prefix=settings.topics.prefix)


def test_a_detect_worker_killed_mid_stream_alerts_as_one_never_killed(
    two_deployments: tuple[Settings, Settings],
) -> None:
    """After a crash the records past the last commit are read again; judged against state
    that already held them or later records, they raised alerts an undisturbed run never
    raised, lost alerts to the cooldown those started, and changed withheld counts."""
    calm, killed = two_deployments
    chunks = audit_chunks(time.time() - 3 * 3600)
    # the sentinels that tell a chunk was judged happen before the records: at now, between
    # chunks, they would move the partitions' clocks hours past the next chunk's records
    before = chunks[0][0].occurred_at

    calm_alerts = Collector(calm.kafka.bootstrap_servers, calm.topics.alerts)
    with DetectProcess(calm) as worker:
        worker.wait_assigned()
        for chunk in chunks:
            publish(calm, chunk)
        wait_drained(calm, calm_alerts, "calm", occurred_at=before)
    calm_alerts.close()
    expected = alerts_by_id(calm_alerts)
    assert len(expected) >= 20, "the records make the detectors fire"

    alerts = Collector(killed.kafka.bootstrap_servers, killed.topics.alerts)
    second = {str(r.event_id) for r in chunks[1]}

    def judging_second_chunk() -> bool:
        return any(second & set(d["evidence"]["event_ids"]) for d in alerts.docs())

    worker = DetectProcess(killed, **KILLABLE)
    worker.wait_assigned()
    publish(killed, chunks[0])
    # killed once a chunk is judged and written
    wait_drained(killed, alerts, "first", occurred_at=before)
    worker.kill()
    worker = DetectProcess(killed, **KILLABLE)
    worker.wait_assigned()
    publish(killed, chunks[1])
    wait_until(judging_second_chunk, 30, "an alert of the second chunk")
    worker.kill()  # killed while the second chunk is judged (or just after)
    with DetectProcess(killed, **KILLABLE) as worker:
        worker.wait_assigned()
        publish(killed, chunks[2])
        wait_drained(killed, alerts, "last", occurred_at=before)
    alerts.close()
    assert expected == alerts_by_id(alerts)
