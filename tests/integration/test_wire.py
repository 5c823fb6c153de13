"""Events make the round trip through the real broker with the codec, byte for byte."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import decode_auth_event, encode
from sessionwarden.contracts.inputs import AUTH_EVENT_ADAPTER
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import activity_doc, login_doc, logout_doc, role_change_doc


def test_every_input_type_round_trips_through_the_broker(
    settings_factory: Callable[..., Settings],
) -> None:
    """What a producer publishes is exactly what a consumer decodes, keyed by user_id."""
    settings = settings_factory()
    now = time.time()
    sent = [
        AUTH_EVENT_ADAPTER.validate_python(doc)
        for doc in (
            login_doc("w1", "wire-user", now, ["viewer", "editor"]),
            activity_doc("w1", "wire-user", now + 1),
            role_change_doc("wire-user", now + 2, granted=["admin"], removed=["viewer"]),
            logout_doc("w1", "wire-user", now + 3),
        )
    ]
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        for event in sent:
            pub.publish(event)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"{settings.topics.prefix}wire",
            "isolation.level": "read_committed",
            "log_level": 3,
        }
    )
    topic = settings.topics.input
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    received = []
    deadline = time.monotonic() + 20
    while len(received) < len(sent) and time.monotonic() < deadline:
        received.extend(m for m in consumer.consume(100, 0.2) if m.error() is None)
    consumer.close()
    assert len(sent) == len(received)
    assert {b"wire-user"} == {m.key() for m in received}
    assert 1 == len({m.partition() for m in received}), "one user, one partition: order kept"
    assert [encode(e) for e in sent] == [m.value() for m in received]
    assert sent == [decode_auth_event(m.value()) for m in received]
