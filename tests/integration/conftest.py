"""Integration fixtures: a real broker, and a unique set of topics and groups per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.kafka.topics import delete_topics, ensure_topics, topic_specs
from sessionwarden.testing.keycloak_idp import KeycloakAdminApi
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

    def __call__(self, provision: bool = True, **overrides: object) -> Settings:
        prefix = f"t{uuid.uuid4().hex[:10]}."
        values: dict[str, object] = {
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


# Until the shared Keycloak fixture: a running Keycloak named by the environment.
@pytest.fixture(scope="session")
def keycloak_base() -> str:
    import os

    base = os.environ.get("SESSIONWARDEN_TEST_KEYCLOAK_URL")
    if not base:
        pytest.skip("no Keycloak")
    return base


@pytest.fixture(scope="session")
def keycloak_admin(keycloak_base: str) -> KeycloakAdminApi:
    return KeycloakAdminApi(keycloak_base, "admin", "admin")
