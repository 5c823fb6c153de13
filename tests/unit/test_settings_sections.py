"""Settings are read by section, and set by the flat names operators have always used."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from sessionwarden.config.settings import (
    SECTIONS,
    FlatSettings,
    Settings,
    TopicNames,
    load_settings,
    variables,
)
from sessionwarden.errors import ConfigError

EXPECTED_SECTIONS = {
    "kafka": {"bootstrap_servers", "kafka_security_protocol", "partitions", "min_insync_replicas"},
    "topics": {"topic_prefix"},
    "enforcer": {"group_id", "instance_id", "batch_size", "producer_delay_budget_s", "state_dir"},
    "detect": {
        "detect_group_id",
        "detect_web_port",
        "detect_commit_interval_s",
        "detect_session_timeout_s",
        "detect_max_documents",
    },
    "sink": {"pg_dsn", "pg_sink_group_id", "pg_batch_size", "pg_cut_off"},
    "dashboard": {"dashboard_host", "dashboard_port", "dashboard_token_file"},
    "gate": {"gate_port", "gate_session_from", "gate_tenant_from", "gate_jwks_url"},
    "metrics": {"metrics_enabled", "enforcer_metrics_port", "health_stall_s"},
    "caep": {"caep_enabled", "caep_issuer", "detect_caep_issuer", "detect_caep_key_id"},
    "ssf_transmitter": {"ssf_tx_issuer", "ssf_tx_state_dir", "ssf_tx_token_file"},
    "ssf_receiver": {"ssf_receiver_port", "ssf_receiver_transmitters", "ssf_receiver_jti_file"},
    "logging": {"log_salt", "log_format", "log_level"},
}


def test_each_flat_name_lands_in_its_section() -> None:
    by_section: dict[str, set[str]] = {}
    for v in variables():
        by_section.setdefault(v.section, set()).add(v.name)
    for section, names in EXPECTED_SECTIONS.items():
        assert names <= by_section[section], section
    assert {"policy_file"} == by_section[""]
    # every setting of the flat model, none lost (67, one of the live-session listing, 20 of
    # the gateway check, 2 of operator commands, one of the stalled-consumer watch and 12 of
    # the Shared Signals receiver, 21 of its transmitter, 12 of
    # the Keycloak actuator, one of the detectors' group session, one of their document cap)
    assert 138 == len(list(variables()))
    assert set(FlatSettings.model_fields) == {v.name for v in variables()}


def test_every_section_field_is_a_setting_except_the_derived_topic_names() -> None:
    derived = {
        "input",
        "revocations",
        "audit",
        "alerts",
        "dlq",
        "caep",
        "enforcer_state",
        "commands",
    }
    for name, model in SECTIONS.items():
        unnamed = set(model.model_fields) - set(model.VARIABLES)
        assert (derived if name == "topics" else set()) == unnamed, name
        assert set(model.VARIABLES) <= set(model.model_fields), name


def test_flat_keywords_and_the_environment_set_sectioned_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESSIONWARDEN_PG_BATCH_SIZE", "77")
    monkeypatch.setenv("sessionwarden_log_level", "DEBUG")  # any case, as before
    monkeypatch.setenv("SESSIONWARDEN_DETECT_CAEP_KEY_ID", "d1")
    s = load_settings(batch_size=9, topic_prefix="t.", dashboard_port=9000, pg_batch_size=5)
    assert (9, 77, 9000) == (s.enforcer.batch_size, s.sink.batch_size, s.dashboard.port)
    assert ("DEBUG", "d1") == (s.logging.level, s.caep.detect_key_id)
    assert ("t.", "t.auth.events", "t.sessionwarden.revocations") == (
        s.topics.prefix,
        s.topics.input,
        s.topics.revocations,
    )
    assert f"t.sessionwarden-enforcer-{s.enforcer.instance_id}" == s.transactional_id


def test_kafka_bootstrap_servers_beats_the_prefixed_name_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "sessionwarden.toml"
    config.write_text('bootstrap_servers = "file:1"\npartitions = 3\nlog_format = "text"\n')
    assert ("file:1", 3, "text") == (
        load_settings(config).kafka.bootstrap_servers,
        load_settings(config).kafka.partitions,
        load_settings(config).logging.format,
    )
    monkeypatch.setenv("SESSIONWARDEN_BOOTSTRAP_SERVERS", "prefixed:1")
    assert "prefixed:1" == load_settings(config).kafka.bootstrap_servers
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "conventional:1")
    assert "conventional:1" == load_settings(config).kafka.bootstrap_servers


def test_errors_name_the_flat_setting_in_every_section() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(pg_batch_size=0, detect_web_host="0.0.0.0", log_level="x", oops=1)
    lines = str(err.value).splitlines()[1:]
    assert {line.strip().split(":")[0] for line in lines} == {
        "pg_batch_size",
        "detect_web_host",
        "log_level",
        "oops",
    }
    with pytest.raises(ConfigError) as err:
        load_settings(kafka_security_protocol="SASL_SSL")
    assert str(err.value).endswith(
        "settings: Value error, kafka_security_protocol SASL_SSL needs kafka_sasl_username "
        "and kafka_sasl_password_file"
    )


def test_settings_and_their_sections_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.enforcer.batch_size = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.topics.input = "elsewhere"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.kafka = s.kafka  # type: ignore[misc]
    assert s.topics is s.topics  # one value, built once


def test_a_renamed_input_is_given_at_construction_and_kept_by_replace() -> None:
    s = load_settings(topic_prefix="bench.")
    shared = s.replace(topics=TopicNames("bench.", input="shared.auth.events"), batch_size=7)
    assert ("shared.auth.events", "bench.sessionwarden.audit") == (
        shared.topics.input,
        shared.topics.audit,
    )
    again = shared.replace(log_level="WARNING")
    assert "shared.auth.events" == again.topics.input
    assert 7 == again.enforcer.batch_size
    moved = shared.replace(topic_prefix="other.")
    assert ("shared.auth.events", "other.sessionwarden.audit") == (
        moved.topics.input,
        moved.topics.audit,
    )


def test_replace_validates_and_does_not_read_the_environment_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = load_settings(partitions=3)
    monkeypatch.setenv("SESSIONWARDEN_PARTITIONS", "9")
    assert 3 == s.replace(group_id="g").kafka.partitions
    assert "g" == s.replace(group_id="g").enforcer.group_id
    with pytest.raises(ConfigError) as err:
        s.replace(replication_factor=1, min_insync_replicas=2)
    assert "min_insync_replicas: larger than replication_factor" in str(err.value)
    with pytest.raises(ConfigError, match="partitions: Input should be greater"):
        s.replace(partitions=0)


def test_a_whole_section_can_be_given_and_flat_values_override_it() -> None:
    s = Settings(topics=TopicNames("a."), topic_prefix="b.")
    assert ("b.", "b.auth.events") == (s.topics.prefix, s.topics.input)
    kept = Settings(kafka=Settings().kafka.model_copy(update={"partitions": 4}), batch_size=2)
    assert (4, 2) == (kept.kafka.partitions, kept.enforcer.batch_size)


def test_topic_names_stand_alone_as_before() -> None:
    names = TopicNames("fresh.")
    assert "fresh.sessionwarden.enforcer-state" == names.enforcer_state
    assert TopicNames() == load_settings().topics
    assert not dataclasses.is_dataclass(names)  # a frozen model: hashable, comparable
    assert hash(names) == hash(TopicNames("fresh."))
