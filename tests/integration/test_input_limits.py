"""auth.events refuses oversized records at the broker, not only in the enforcer's decoder."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import MAX_RECORD_BYTES
from sessionwarden.kafka.topics import INPUT_MAX_MESSAGE_BYTES, topic_specs
from sessionwarden.sdk.publisher import AuthEventPublisher, DeliveryError


def test_auth_events_max_message_bytes_matches_the_decoder_limit(
    settings_factory: Callable[..., Settings],
) -> None:
    """A record the enforcer would dead-letter as oversized never gets stored at all."""
    settings = settings_factory()
    spec = {s.name: s for s in topic_specs(settings, 86400)}[settings.topics.input]
    assert str(INPUT_MAX_MESSAGE_BYTES) == spec.configs["max.message.bytes"]
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as publisher:
        publisher.publish_raw(b"u-limit", b"{" + b" " * (MAX_RECORD_BYTES - 2) + b"}")
    publisher = AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input)
    publisher.publish_raw(b"u-big", b"{" + b" " * (MAX_RECORD_BYTES + 8 * 1024) + b"}")
    with pytest.raises(DeliveryError, match="Message size too large"):
        publisher.flush(15)


def test_the_publisher_keeps_batches_of_small_events_under_the_limit(
    settings_factory: Callable[..., Settings],
) -> None:
    """Thousands of ordinary events batched together must not be refused as one oversized batch."""
    settings = settings_factory()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as publisher:
        for n in range(5000):
            publisher.publish_raw(b"u-many", b'{"n": %d, "pad": "%s"}' % (n, b"x" * 300))
