"""Every librdkafka client a process builds from the settings logs in the way the settings say:
a client built without the security properties cannot reach a secured cluster at all (the
PostgreSQL sink's consumer once dropped them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.enforcer import kafka_config
from sessionwarden.kafka.security import client_config
from sessionwarden.sink.postgres import consumer

BUILDERS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "enforcer consumer": kafka_config.consumer_config,
    "enforcer producer": kafka_config.producer_config,
    "enforcer restore": kafka_config.restore_config,
    "enforcer admin": kafka_config.admin_config,
    "postgres sink": consumer.consumer_config,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_client_carries_the_security_properties(name: str, tmp_path: Path) -> None:
    """The sink, like the enforcer, must log in on a secured cluster."""
    password, ca = tmp_path / "password", tmp_path / "ca.pem"
    password.write_text("secret\n")
    ca.write_text("not parsed by the settings\n")
    settings = load_settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password_file=str(password),
        kafka_ssl_ca_file=str(ca),
    )
    config = BUILDERS[name](settings)
    expected = client_config(settings.kafka)
    assert expected == {key: config.get(key) for key in expected}
