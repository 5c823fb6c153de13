"""Instance id from the host, and the topic configs the enforcer relies on."""

from __future__ import annotations

import socket

import pytest

from sessionwarden.config.settings import host_instance_id, load_settings
from sessionwarden.errors import ConfigError
from sessionwarden.kafka.topics import topic_specs


def test_instance_id_defaults_from_the_host_name() -> None:
    assert host_instance_id() == load_settings().enforcer.instance_id
    assert socket.gethostname().split(".")[0] in load_settings().enforcer.instance_id
    assert "enforcer-7f9c-xk2p" == host_instance_id("enforcer-7f9c-xk2p")
    assert "a-b.c" == host_instance_id("a b.c")
    assert "0" == host_instance_id("///")
    assert 64 == len(host_instance_id("x" * 100))


def test_input_is_timed_by_the_broker_and_every_topic_has_a_min_isr() -> None:
    specs = {s.name: s for s in topic_specs(load_settings(replication_factor=3), 3600)}
    assert "LogAppendTime" == specs["auth.events"].configs["message.timestamp.type"]
    assert {"2"} == {s.configs["min.insync.replicas"] for s in specs.values()}
    single = topic_specs(load_settings(), 3600)
    assert {"1"} == {s.configs["min.insync.replicas"] for s in single}
    chosen = topic_specs(load_settings(replication_factor=3, min_insync_replicas=3), 3600)
    assert {"3"} == {s.configs["min.insync.replicas"] for s in chosen}


def test_a_min_isr_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(replication_factor=2, min_insync_replicas=3)
    assert "min_insync_replicas" in str(err.value)
