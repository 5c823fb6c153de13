"""Kafka security settings: one group, mapped onto librdkafka, aiokafka and faust; no secrets
in repr or errors; and the least-privilege ACL plan."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from sessionwarden.cli.acls import Principals, acl_plan
from sessionwarden.cli.main import main
from sessionwarden.config.settings import load_settings
from sessionwarden.errors import ConfigError
from sessionwarden.kafka.security import KafkaSecurity, client_config

SECRET = "correct horse battery staple"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("not parsed by the settings\n")
    return path


def sasl_ssl(secret_file: Path, ca_file: Path, **extra: object) -> dict[str, object]:
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": "enforcer",
        "kafka_sasl_password_file": str(secret_file),
        "kafka_ssl_ca_file": str(ca_file),
        **extra,
    }


def test_plaintext_adds_no_client_properties() -> None:
    """The default stays the loopback broker of development and most tests."""
    settings = load_settings()
    assert {"bootstrap.servers": "127.0.0.1:9092"} == client_config(settings.kafka)
    assert KafkaSecurity.from_settings(settings.kafka).faust_credentials() is None


def test_sasl_ssl_maps_onto_librdkafka_with_host_name_verification(
    secret_file: Path, ca_file: Path
) -> None:
    """Every confluent-kafka client of the product gets the same properties."""
    settings = load_settings(**sasl_ssl(secret_file, ca_file))
    expected = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "enforcer",
        "sasl.password": SECRET,
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(ca_file),
    }
    assert expected == KafkaSecurity.from_settings(settings.kafka).librdkafka()


def test_host_name_verification_can_be_turned_off_explicitly(
    secret_file: Path, ca_file: Path
) -> None:
    """Off only when asked for, and then visible in the log-safe summary."""
    settings = load_settings(**sasl_ssl(secret_file, ca_file, kafka_ssl_verify_hostname=False))
    security = KafkaSecurity.from_settings(settings.kafka)
    assert "none" == security.librdkafka()["ssl.endpoint.identification.algorithm"]
    assert "host name NOT verified" in security.describe()


def test_aiokafka_and_faust_get_the_same_login(secret_file: Path) -> None:
    """The detectors (faust) and asyncio clients must not need their own settings."""
    settings = load_settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="detect",
        kafka_sasl_password_file=str(secret_file),
    )
    kwargs = KafkaSecurity.from_settings(settings.kafka).aiokafka()
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert (True, ssl.CERT_REQUIRED) == (context.check_hostname, context.verify_mode)
    expected = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "detect",
        "sasl_plain_password": SECRET,
    }
    assert expected == kwargs
    credentials = KafkaSecurity.from_settings(settings.kafka).faust_credentials()
    assert ("detect", "SASL_SSL") == (credentials.username, credentials.protocol.value)  # type: ignore[union-attr]


def test_the_password_never_shows_in_repr_or_the_summary(secret_file: Path, ca_file: Path) -> None:
    """Settings objects end up in logs and tracebacks."""
    settings = load_settings(**sasl_ssl(secret_file, ca_file))
    security = KafkaSecurity.from_settings(settings.kafka)
    for text in (
        repr(settings),
        repr(security),
        security.describe(),
    ):
        assert SECRET not in text


def test_a_missing_password_file_is_one_error_naming_the_setting(tmp_path: Path) -> None:
    """Configuration mistakes must be fixable from the message alone."""
    with pytest.raises(ConfigError, match="kafka_sasl_password_file: cannot read") as caught:
        load_settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="u",
            kafka_sasl_password_file=str(tmp_path / "absent"),
        )
    assert "Traceback" not in str(caught.value)


def test_sasl_without_a_login_is_refused() -> None:
    """A secured protocol without credentials cannot work; say so before connecting."""
    with pytest.raises(ConfigError, match="needs kafka_sasl_username and kafka_sasl_password"):
        load_settings(kafka_security_protocol="SASL_SSL")


def test_validation_errors_never_quote_the_secret(secret_file: Path, ca_file: Path) -> None:
    """pydantic errors echo input values; the password is only ever a file name."""
    with pytest.raises(ConfigError) as caught:
        load_settings(**sasl_ssl(secret_file, ca_file, partitions=0))
    assert SECRET not in str(caught.value)


def test_the_producer_principal_may_write_auth_events_only() -> None:
    """Anyone who may write the revocation topic can forge or suppress revocations."""
    plan = acl_plan(load_settings(), Principals())
    producer = {(a.operation, a.resource, a.name) for a in plan if "producer" in a.principal}
    assert {("WRITE", "TOPIC", "auth.events")} == producer


def test_the_service_principal_reads_revocations_and_writes_nothing() -> None:
    """A subscribing service must not be able to forge a grant on auth.events."""
    plan = acl_plan(load_settings(topic_prefix="p."), Principals(service="User:svc"))
    service = [a for a in plan if a.principal == "User:svc"]
    assert [] == [a for a in service if a.operation != "READ"]
    assert {"p.sessionwarden.revocations"} == {a.name for a in service if a.resource == "TOPIC"}


def test_the_sink_principal_reads_revocations_with_its_own_group_only() -> None:
    """The PostgreSQL sink reads the revocation topic in its own group, and nothing more: no
    write anywhere (no forged or suppressed revocation), no auth events, no other group (joining
    the enforcer's would take its partitions)."""
    settings = load_settings(topic_prefix="p.", pg_sink_group_id="pg-sink-a")
    plan = acl_plan(settings, Principals(sink="User:pg"))
    sink = {(a.operation, a.resource, a.name, a.pattern) for a in plan if a.principal == "User:pg"}
    assert {
        ("READ", "TOPIC", "p.sessionwarden.revocations", "LITERAL"),
        ("READ", "GROUP", "pg-sink-a", "LITERAL"),
    } == sink


def test_the_idp_principal_reads_revocations_with_its_own_group_only() -> None:
    """The Keycloak actuator reads the revocation topic in its own group and writes nothing:
    it can end sessions in Keycloak, never forge or bury a revocation."""
    settings = load_settings(topic_prefix="p.", keycloak_group_id="kc-a")
    plan = acl_plan(settings, Principals(idp="User:kc"))
    idp = {(a.operation, a.resource, a.name, a.pattern) for a in plan if a.principal == "User:kc"}
    assert {
        ("READ", "TOPIC", "p.sessionwarden.revocations", "LITERAL"),
        ("READ", "GROUP", "kc-a", "LITERAL"),
    } == idp


def test_the_sink_principal_defaults_to_its_own_user() -> None:
    """A deployment that names no sink principal still gets one of its own, not a shared one."""
    plan = acl_plan(load_settings(), Principals())
    sink = {a.principal for a in plan if a.name == "sessionwarden-pg-sink"}
    assert {"User:sessionwarden-sink"} == sink


def test_acls_prints_the_sink_principal_given_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--sink-principal` names the login the sink runs as; the printed plan uses it."""
    assert 0 == main(["acls", "--sink-principal", "User:pg-sink"])
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    sink = [(w[1], w[2], w[3]) for w in lines if w[0] == "User:pg-sink"]
    assert [
        ("READ", "topic", "sessionwarden.revocations"),
        ("READ", "group", "sessionwarden-pg-sink"),
    ] == sink


def test_the_security_principal_reads_its_topics_and_describes_only_what_the_lag_needs() -> None:
    """Read only: the team and its dashboard read alerts, audit, dead letters and revocations;
    of auth.events and the enforcer's and detectors' groups they see offsets, never records."""
    settings = load_settings(topic_prefix="p.", group_id="enf", detect_group_id="det")
    plan = acl_plan(settings, Principals(security="User:team"))
    team = {
        (a.operation, a.resource, a.name, a.pattern) for a in plan if a.principal == "User:team"
    }
    topics = ("alerts", "audit", "dlq", "revocations")
    assert {
        *(("READ", "TOPIC", f"p.sessionwarden.{name}", "LITERAL") for name in topics),
        ("READ", "GROUP", "sessionwarden-tail-", "PREFIXED"),
        ("DESCRIBE", "GROUP", "sessionwarden-dashboard-", "PREFIXED"),
        ("DESCRIBE", "TOPIC", "p.auth.events", "LITERAL"),
        ("DESCRIBE", "GROUP", "enf", "LITERAL"),
        ("DESCRIBE", "GROUP", "p.det", "LITERAL"),
    } == team


def test_the_enforcer_may_write_every_topic_it_produces_to_in_its_transactions() -> None:
    """A topic missing here fails the whole transaction on a secured cluster: the enforcer
    forwards records from the wrong partition back to auth.events, so one record from a
    producer with another partitioner would stop every revocation."""
    settings = load_settings(topic_prefix="p.")
    plan = acl_plan(settings, Principals())
    t = settings.topics
    writes = {a.name for a in plan if a.principal.endswith("enforcer") and a.operation == "WRITE"}
    produced = {t.input, t.revocations, t.audit, t.dlq, t.caep, t.enforcer_state}
    assert set() == produced - writes


def test_the_enforcer_may_read_the_changelogs_retention_and_no_other_config() -> None:
    """Snapshots are checked against the changelog's tombstone retention; refused, every
    restore is a full one."""
    settings = load_settings(topic_prefix="p.")
    plan = acl_plan(settings, Principals())
    configs = {(a.principal, a.name) for a in plan if a.operation == "DESCRIBE_CONFIGS"}
    assert {("User:sessionwarden-enforcer", "p.sessionwarden.enforcer-state")} == configs


def test_only_the_enforcer_may_write_revocations() -> None:
    """The revocation topic is the product's verdict; one writer."""
    plan = acl_plan(load_settings(), Principals())
    writers = {a.principal for a in plan if a.operation == "WRITE" and "revocations" in a.name}
    assert {"User:sessionwarden-enforcer"} == writers


def sasl_plaintext(secret_file: Path, mechanism: str, **extra: object) -> dict[str, object]:
    return {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": mechanism,
        "kafka_sasl_username": "enforcer",
        "kafka_sasl_password_file": str(secret_file),
        **extra,
    }


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_sasl_plain_without_tls_is_refused_unless_explicitly_allowed(secret_file: Path) -> None:
    """PLAIN sends the password as is: over a plaintext connection anyone on the path reads it."""
    with pytest.raises(ConfigError, match="kafka_allow_sasl_plain_without_tls"):
        load_settings(**sasl_plaintext(secret_file, "PLAIN"))
    allowed = load_settings(
        **sasl_plaintext(secret_file, "PLAIN", kafka_allow_sasl_plain_without_tls=True)
    )
    assert "PLAIN" == KafkaSecurity.from_settings(allowed.kafka).librdkafka()["sasl.mechanism"]
    assert "password NOT encrypted" in KafkaSecurity.from_settings(allowed.kafka).describe()


def test_an_allowed_plain_password_without_tls_is_warned_about_once_per_process(
    secret_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The opt-in must be impossible to miss in the log, and not repeat for every client."""
    settings = load_settings(
        **sasl_plaintext(secret_file, "PLAIN", kafka_allow_sasl_plain_without_tls=True)
    )
    security = KafkaSecurity.from_settings(settings.kafka)
    security.librdkafka()
    security.aiokafka()
    security.faust_credentials()
    [warning] = warnings_logged(caplog)
    assert warning.startswith("INSECURE KAFKA CONNECTION")
    assert "SASL PLAIN password travels unencrypted" in warning
    assert SECRET not in warning


@pytest.mark.parametrize(
    ("settings", "risk"),
    [
        ({"kafka_sasl_mechanism": "SCRAM-SHA-512"}, "traffic is not encrypted"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_verify_hostname": False}, "host name"),
    ],
)
def test_other_weakened_connections_are_warned_about(
    secret_file: Path,
    ca_file: Path,
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, object],
    risk: str,
) -> None:
    """SASL over a plaintext connection, TLS without host name verification: allowed, loudly."""
    values = {**sasl_plaintext(secret_file, "SCRAM-SHA-512"), **settings}
    if values["kafka_security_protocol"] == "SSL":
        values["kafka_ssl_ca_file"] = str(ca_file)
    KafkaSecurity.from_settings(load_settings(**values).kafka).librdkafka()
    [warning] = warnings_logged(caplog)
    assert risk in warning


def test_tls_settings_with_a_protocol_without_tls_are_refused(
    secret_file: Path, ca_file: Path
) -> None:
    """A CA file beside SASL_PLAINTEXT means TLS was intended; never drop it silently."""
    with pytest.raises(ConfigError, match=r"kafka_ssl_ca_file.*no TLS"):
        load_settings(**sasl_plaintext(secret_file, "SCRAM-SHA-512", kafka_ssl_ca_file=ca_file))


def test_a_secure_connection_logs_no_warning(
    secret_file: Path, ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Warnings that always fire are warnings nobody reads."""
    KafkaSecurity.from_settings(load_settings(**sasl_ssl(secret_file, ca_file)).kafka).librdkafka()
    assert [] == warnings_logged(caplog)


def test_the_clients_of_one_process_share_one_warning(
    secret_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each client builds its security from the settings; the warning still comes only once."""
    settings = load_settings(
        **sasl_plaintext(secret_file, "PLAIN", kafka_allow_sasl_plain_without_tls=True)
    )
    KafkaSecurity.from_settings(settings.kafka).librdkafka()
    client_config(settings.kafka)
    KafkaSecurity.from_settings(settings.replace(log_level="DEBUG").kafka).aiokafka()
    [warning] = warnings_logged(caplog)
    assert warning.startswith("INSECURE KAFKA CONNECTION")


def test_settings_loaded_again_with_a_new_password_get_it(secret_file: Path, ca_file: Path) -> None:
    """A password file rotated between two loads must not be answered from the first load."""
    before = KafkaSecurity.from_settings(load_settings(**sasl_ssl(secret_file, ca_file)).kafka)
    secret_file.write_text("rotated\n")
    after = KafkaSecurity.from_settings(load_settings(**sasl_ssl(secret_file, ca_file)).kafka)
    assert (SECRET, "rotated") == (before.password, after.password)
