"""Integration fixtures: a real broker, and a unique set of topics and groups per test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient

from streams.settings import Settings, load_settings
from streams.topics import ensure_topics, topic_specs
from tests.integration.broker import broker_bootstrap


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    with broker_bootstrap() as servers:
        yield servers


@pytest.fixture(scope="session")
def admin(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers})


@pytest.fixture
def settings_factory(
    bootstrap_servers: str, admin: AdminClient
) -> Iterator[Callable[..., Settings]]:
    """Settings with a fresh topic prefix and group per call; topics created, deleted after."""
    created: list[str] = []

    def make(provision: bool = True, **overrides: object) -> Settings:
        prefix = f"t{uuid.uuid4().hex[:10]}."
        values: dict[str, object] = {
            "bootstrap_servers": bootstrap_servers,
            "topic_prefix": prefix,
            "partitions": 3,
            "group_id": f"{prefix}enforcer",
        }
        values.update(overrides)
        settings = load_settings(**values)
        specs = topic_specs(settings, 86400)
        created.extend(s.name for s in specs)
        if provision:
            ensure_topics(admin, specs, report=lambda _: None)
        return settings

    yield make
    if created:
        for fut in admin.delete_topics(created, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # never created by the test: nothing to delete
                fut.result(timeout=30)
