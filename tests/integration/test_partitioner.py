"""Our producers and aiokafka (murmur2, as the Java client) put every user on the same partition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import decode_auth_event
from sessionwarden.contracts.inputs import AUTH_EVENT_ADAPTER, AuthEvent
from sessionwarden.sdk.publisher import AsyncAuthEventPublisher, AuthEventPublisher, to_wire
from tests.integration.harness import login_doc, wait_until

KEYS = 200
PARTITIONS = 6


def events(tag: str, now: float) -> list[AuthEvent]:
    return [
        AUTH_EVENT_ADAPTER.validate_python(login_doc(f"{tag}-s{n}", f"user-{n}", now))
        for n in range(KEYS)
    ]


async def send_with_aiokafka(servers: str, topic: str, batch: list[AuthEvent]) -> dict[str, int]:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        placed = {}
        for event in batch:
            key, value = to_wire(event)
            meta = await producer.send_and_wait(topic, value, key=key)
            placed[event.user_id] = meta.partition
        return placed
    finally:
        await producer.stop()


async def send_with_ours_async(servers: str, topic: str, batch: list[AuthEvent]) -> dict[str, int]:
    async with AsyncAuthEventPublisher(servers, topic) as publisher:
        deliveries = await asyncio.gather(*(publisher.publish(event) for event in batch))
    return {event.user_id: d.partition for event, d in zip(batch, deliveries, strict=True)}


def read_back(servers: str, topic: str, count: int) -> list[tuple[int, AuthEvent]]:
    consumer = Consumer(
        {"bootstrap.servers": servers, "group.id": f"{topic}-check", "log_level": 3}
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got: list[tuple[int, AuthEvent]] = []

    def all_read() -> bool:
        for msg in consumer.consume(1000, 0.2):
            if msg.error() is None:
                got.append((msg.partition(), decode_auth_event(msg.value())))
        return len(got) >= count

    try:
        wait_until(all_read, 30, f"{count} events back from {topic}")
    finally:
        consumer.close()
    return got


def test_our_producers_and_aiokafka_map_every_user_to_the_same_partition(
    settings_factory: Callable[..., Settings],
) -> None:
    """Co-partitioning breaks silently if one producer hashes keys otherwise (CRC32, murmur2)."""
    settings = settings_factory(partitions=PARTITIONS)
    servers, topic = settings.kafka.bootstrap_servers, settings.topics.input
    now = time.time()
    sync_batch = events("sync", now)
    with AuthEventPublisher(servers, topic) as publisher:
        for event in sync_batch:
            publisher.publish(event)
    ours_async = asyncio.run(send_with_ours_async(servers, topic, events("async", now)))
    theirs = asyncio.run(send_with_aiokafka(servers, topic, events("aiokafka", now)))
    sync_ids = {event.event_id for event in sync_batch}
    ours_sync = {
        event.user_id: partition
        for partition, event in read_back(servers, topic, 3 * KEYS)
        if event.event_id in sync_ids
    }
    assert KEYS == len(theirs)
    assert theirs == ours_sync
    assert theirs == ours_async
    assert set(range(PARTITIONS)) == set(theirs.values()), "keys spread over every partition"
    assert {user: java_partition(user) for user in theirs} == theirs


def java_partition(user_id: str) -> int:
    """The Java client's rule: toPositive(murmur2(key)) % partitions."""
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % PARTITIONS
