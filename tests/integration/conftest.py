"""Integration fixtures: a real broker, a unique set of topics and groups per test, and one real
Keycloak per test session (its events on a topic set of its own)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.kafka.topics import delete_topics, ensure_topics, topic_specs
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.keycloak import (
    KeycloakAdmin,
    KeycloakError,
    KeycloakServer,
    Realm,
    built_copy,
    provision,
)
from tests.integration.broker import broker_bootstrap


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    with broker_bootstrap() as servers:
        yield servers


@pytest.fixture(scope="session")
def metrics_token_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the processes of the tests write their generated metrics tokens."""
    return tmp_path_factory.mktemp("metrics-tokens")


@pytest.fixture(scope="session")
def admin(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers})


class TopicSets:
    """Settings with a fresh topic prefix and group per call; every topic deleted by ``close``."""

    def __init__(self, bootstrap_servers: str, admin: AdminClient, token_dir: Path) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.admin = admin
        self.token_dir = token_dir
        self.created: list[str] = []

    def values(self, prefix: str) -> dict[str, object]:
        """The settings of a test on the topics under ``prefix``, with a group of their own."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "topic_prefix": prefix,
            "partitions": 3,
            "group_id": f"{prefix}enforcer",
            # A free metrics port each (tests and other checkouts run several services at once),
            # tokens written beside the test's other files.
            "enforcer_metrics_port": 0,
            "detect_metrics_port": 0,
            "sink_metrics_port": 0,
            "dashboard_metrics_port": 0,
            "metrics_token_dir": self.token_dir,
        }

    def __call__(self, provision: bool = True, **overrides: object) -> Settings:
        prefix = f"t{uuid.uuid4().hex[:10]}."
        values = self.values(prefix)
        values.update(overrides)
        settings = load_settings(**values)
        specs = topic_specs(settings, 86400)
        self.created.extend(s.name for s in specs)
        if provision:
            ensure_topics(self.admin, specs, report=lambda _: None)
        return settings

    def close(self) -> None:
        delete_topics(self.admin, self.created)  # some never created by the test: no error


@pytest.fixture
def settings_factory(
    bootstrap_servers: str, admin: AdminClient, metrics_token_dir: Path
) -> Iterator[Callable[..., Settings]]:
    """Settings with a fresh topic prefix and group per call; topics created, deleted after."""
    topics = TopicSets(bootstrap_servers, admin, metrics_token_dir)
    yield topics
    topics.close()


class KeycloakHarness:
    """The session's Keycloak, publishing every realm's events to ``input_topic`` (under
    ``topic_prefix``, whose topics exist for the session), read by ``events`` from the start.
    Each test provisions a realm of its own (``realm()``): the realm is the records' tenant."""

    def __init__(self, server: KeycloakServer, topics: TopicSets, settings: Settings) -> None:
        self.server = server
        self.admin: KeycloakAdmin = server.admin()
        self._topics = topics
        self.topic_prefix = settings.topics.prefix
        self.input_topic = settings.topics.input
        self.events = Collector(topics.bootstrap_servers, self.input_topic)

    def realm(self, **options: object) -> Realm:
        return provision(self.admin, f"r{uuid.uuid4().hex[:10]}", **options)  # type: ignore[arg-type]

    def settings(self, **overrides: object) -> Settings:
        """Settings reading Keycloak's topic set, with a group of their own; the topics are the
        session's (never deleted by a test)."""
        values = self._topics.values(self.topic_prefix)
        values["group_id"] = f"{self.topic_prefix}{uuid.uuid4().hex[:8]}"
        values.update(overrides)
        return load_settings(**values)


@pytest.fixture(scope="session")
def keycloak(
    bootstrap_servers: str, admin: AdminClient, metrics_token_dir: Path
) -> Iterator[KeycloakHarness]:
    """One Keycloak for the whole test session (a start costs 15-70 s), built once into the
    cache by `make keycloak`. Under CI=true a Keycloak that cannot be built or started fails
    the tests that need it; elsewhere they skip with the reason."""
    try:
        built = built_copy()
    except KeycloakError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Keycloak could not be installed: {err}")
        pytest.skip(f"Keycloak is not available here ({err}); `make keycloak` builds it")
    topics = TopicSets(bootstrap_servers, admin, metrics_token_dir)
    settings = topics()
    server = KeycloakServer(bootstrap_servers=bootstrap_servers, topic=settings.topics.input)
    try:
        server.start(built)
    except KeycloakError as err:
        topics.close()
        pytest.fail(f"Keycloak did not start: {err}")
    harness = KeycloakHarness(server, topics, settings)
    try:
        yield harness
    finally:
        harness.events.close()
        server.stop()
        topics.close()
