"""Service-side clients on the real broker: the example service behind the middleware, the
listener's rebuild of a large revocation topic, and delivery errors of the async publisher."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.client import HTTPConnection

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import decode_revocation_record, encode
from sessionwarden.contracts.outputs import Revalidation, Revocation
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.sdk.publisher import AsyncAuthEventPublisher, AuthEventPublisher, DeliveryError
from tests.integration.browser.harness import ExampleService
from tests.integration.harness import EnforcerProcess, login_doc, wait_until

CHALLENGE = 'Bearer error="invalid_token", error_description="session revoked"'
IDLE_S = 3.0  # fast.toml, risk "medium"


def get(port: int, session_id: str) -> tuple[int, dict[str, str], bytes]:
    conn = HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/data", headers={"X-Session-Id": session_id})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_the_example_service_refuses_a_session_once_the_enforcer_times_it_out(
    settings_factory: Callable[..., Settings],
) -> None:
    """End to end: login -> idle deadline -> revocation on Kafka -> 401 at the service."""
    settings = settings_factory()
    enforcer = EnforcerProcess(settings)
    service = ExampleService(settings)
    try:
        enforcer.wait_assigned()
        service.start()
        port = service.server.port
        idle, live = service.issue(), service.issue()  # the example accepts only its own
        login_at = time.time()
        with AuthEventPublisher(
            settings.kafka.bootstrap_servers, settings.topics.input
        ) as publisher:
            publisher.publish(login_doc(idle, "u-svc", login_at))
            publisher.publish(login_doc(live, "u-svc-2", login_at, risk="low"))  # idle 6s
        assert 200 == get(port, idle)[0]
        refused_at = wait_until(
            lambda: time.time() if get(port, idle)[0] == 401 else None,
            15,
            "the service to refuse the idle session",
        )
        status, headers, _ = get(port, idle)
        live_status = get(port, live)[0]
    finally:
        service.stop()
        enforcer.stop()
    deadline = login_at + IDLE_S
    possible, observed = service.applied[idle] - deadline, refused_at - deadline
    print(f"\n401 possible {possible * 1000:.0f} ms after the idle deadline; observed after "
          f"{observed * 1000:.0f} ms (polling)")  # fmt: skip
    assert (401, CHALLENGE) == (status, headers["www-authenticate"])
    assert 200 == live_status, "another user's live session is untouched"
    assert 0 <= possible <= observed < 3.0


def make_records(now: float) -> tuple[list[Revocation | Revalidation], dict[str, str]]:
    """10,000 records: sessions revoked once, twice, revalidated then revoked, and revalidated
    only; each session's records in order, sessions interleaved. Returns them with the latest
    revocation id of every revoked session."""
    at = datetime.fromtimestamp(now, UTC)
    common = {"user_id": "u", "tenant": "acme", "effective_at": at, "emitted_at": at}
    common["policy_version"] = "it"

    def revoke(sid: str, reason: str) -> Revocation:
        return Revocation(
            revocation_id=uuid.uuid4(), session_id=sid, reason=reason, roles=[], permissions=[],
            **common,
        )  # fmt: skip

    def revalidate(sid: str) -> Revalidation:
        return Revalidation(
            revalidation_id=uuid.uuid4(), session_id=sid, roles_granted=["editor"],
            roles=["editor"], **common,
        )  # fmt: skip

    stories: list[list[Revocation | Revalidation]] = []
    for n in range(6000):
        stories.append([revoke(f"once-{n}", "idle_timeout")])
    for n in range(1000):
        stories.append([revoke(f"twice-{n}", "idle_timeout"), revoke(f"twice-{n}", "logout")])
    for n in range(500):
        stories.append([revalidate(f"grant-{n}"), revoke(f"grant-{n}", "permissions_revoked")])
    for n in range(1000):
        stories.append([revalidate(f"live-{n}")])
    rng = random.Random(5)
    records: list[Revocation | Revalidation] = []
    while stories:
        story = stories[rng.randrange(len(stories))]
        records.append(story.pop(0))
        if not story:
            stories.remove(story)
    latest = {r.session_id: str(r.revocation_id) for r in records if isinstance(r, Revocation)}
    return records, latest


def read_topic(servers: str, topic: str, partitions: int) -> dict[str, str]:
    """The latest revocation id per session, read with a plain consumer to the end offsets."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"{topic}-check",
            "isolation.level": "read_committed",
        }
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    latest: dict[str, str] = {}

    def at_end() -> bool:
        for msg in consumer.consume(5000, 0.2):
            record = decode_revocation_record(msg.value())
            if isinstance(record, Revocation):
                latest[record.session_id] = str(record.revocation_id)
        return all(tp.offset >= ends[tp.partition] for tp in consumer.position(tps))

    try:
        wait_until(at_end, 60, f"reading {topic} to its end")
    finally:
        consumer.close()
    return latest


def test_a_new_listener_rebuilds_exactly_the_revocations_on_the_topic(
    settings_factory: Callable[..., Settings],
) -> None:
    """After a restart the service must know every revocation on the topic, and no more."""
    settings = settings_factory()
    topic = settings.topics.revocations
    records, generated = make_records(time.time())
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True,
         "partitioner": "murmur2_random", "linger.ms": 20}
    )  # fmt: skip
    for record in records:
        producer.produce(topic, encode(record), record.session_id.encode())
        producer.poll(0)
    assert 0 == producer.flush(30)
    on_topic = read_topic(settings.kafka.bootstrap_servers, topic, settings.kafka.partitions)
    seen: list[str] = []
    listener = RevocationListener(
        settings.kafka.bootstrap_servers,
        topic,
        max_lifetime_s=3600,
        on_revocation=lambda r: seen.append("revocation"),
        on_revalidation=lambda r: seen.append("revalidation"),
    )
    started = time.monotonic()
    with listener:
        assert listener.wait_ready(60)
        rebuilt = {sid: entry.revocation_id for (_, sid), entry in listener.snapshot().items()}
        took = time.monotonic() - started
    print(f"\nrebuilt {len(rebuilt)} revoked sessions from {len(records)} records in {took:.2f}s")
    assert 10_000 == len(records)
    assert generated == on_topic, "the topic holds what was produced"
    assert on_topic == rebuilt
    assert (8500, 1500) == (seen.count("revocation"), seen.count("revalidation"))
    assert not any(sid.startswith("live-") for sid in rebuilt)


def test_the_async_publisher_raises_delivery_errors_at_the_await() -> None:
    """A service awaiting a publish must learn that the broker never took the event."""

    async def publish_to_nowhere() -> None:
        async with AsyncAuthEventPublisher(
            "127.0.0.1:1", "nowhere", **{"message.timeout.ms": 500, "log_level": 0}
        ) as publisher:
            await publisher.publish(login_doc("lost", "u-lost", time.time()))

    with pytest.raises(DeliveryError, match="nowhere"):
        asyncio.run(publish_to_nowhere())
