"""The product on a secured cluster: a separate broker (SASL_SSL with SCRAM, TLS from a CA made
at start-up, the standard authorizer with the ACLs of `sessionwarden acls --apply`).

End to end over SASL_SSL (enforcer, detectors, publisher, listener, tail), every principal
denied what the least-privilege plan does not grant, and a wrong password or an untrusted CA
ending a command with one line. The shared plaintext broker is never touched.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.contracts.codec import encode
from sessionwarden.enforcer.checkpoints import changelog_facts
from sessionwarden.enforcer.engine.forward import murmur2_partition
from sessionwarden.kafka.reading import TopicUnavailable, read_topic
from sessionwarden.kafka.security import KafkaSecurity, client_config
from sessionwarden.kafka.topics import admin_client, ensure_topics, topic_specs
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.policy import load_policy
from sessionwarden.sdk.listener import ListenerError, RevocationListener
from sessionwarden.sdk.publisher import AuthEventPublisher, DeliveryError, to_wire
from sessionwarden.sink.postgres.consumer import consumer_config
from tests.integration.harness import (
    DETECT_POLICY,
    REPO,
    DetectProcess,
    EnforcerProcess,
    ServiceProcess,
    login_doc,
    role_change_doc,
    service_env,
    wait_until,
)
from tests.unit.sdk.fakes import revocation

PREFIX = "sec."
PARTITIONS = 2
DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED


def _load_secure() -> ModuleType:
    path = REPO / "infra/kafka/secure.py"
    spec = importlib.util.spec_from_file_location("sessionwarden_secure_broker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


secure = _load_secure()


def _free_port_pair() -> int:
    """A port whose successor is free too (the controller's)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports")


class Cluster:
    """The secured broker with the product's topics and ACLs; settings per principal."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker

    def env(self, user: str) -> dict[str, str]:
        return {
            **self.broker.settings_env(user),
            "SESSIONWARDEN_TOPIC_PREFIX": PREFIX,
            "SESSIONWARDEN_PARTITIONS": str(PARTITIONS),
        }

    def settings(self, user: str, **overrides: Any) -> Settings:
        values = {k.removeprefix("SESSIONWARDEN_").lower(): v for k, v in self.env(user).items()}
        values["bootstrap_servers"] = values.pop("kafka_bootstrap_servers")
        return load_settings(**{**values, **overrides})

    def client(self, user: str, **extra: Any) -> dict[str, Any]:
        return {**self.broker.client_config(user), "log_level": 0, **extra}

    def cli(
        self, env: dict[str, str], *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sessionwarden", *args],
            env={**os.environ, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    broker = secure.SecureBroker(tmp_path_factory.mktemp("secure-kafka"), _free_port_pair())
    broker.start()
    try:
        found = Cluster(broker)
        admin = found.settings("admin")
        ensure_topics(admin_client(admin), topic_specs(admin, 86400), report=lambda _: None)
        applied = found.cli(found.env("admin"), "acls", "--apply")
        assert 0 == applied.returncode, applied.stderr
        assert "applied" in applied.stdout
        yield found
    finally:
        broker.stop()


def _produce(config: dict[str, Any], topic: str, value: bytes) -> KafkaError | None:
    """One record with a plain (non-idempotent) producer; the delivery error, if any."""
    errors: list[KafkaError | None] = []
    producer = Producer({**config, "enable.idempotence": False, "message.timeout.ms": 10_000})
    producer.produce(topic, value, b"k", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(15)
    assert 1 == len(errors), "no delivery report"
    return errors[0]


class SecureDetect(DetectProcess):
    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        ServiceProcess.__init__(
            self, ["-m", "sessionwarden.detect"], {**service_env(settings, DETECT_POLICY), **env}
        )


def test_enforcer_detectors_publisher_and_listener_work_end_to_end_over_sasl_ssl(
    cluster: Cluster,
) -> None:
    """Each process logs in as its own principal, with only its own ACLs, and the product
    still works: a login times out, the listener sees the revocation, the detectors alert."""
    enforcer_settings = cluster.settings("sessionwarden-enforcer")
    enforcer = EnforcerProcess(
        enforcer_settings, policy=DETECT_POLICY, **cluster.env("sessionwarden-enforcer")
    )
    detect = SecureDetect(
        cluster.settings("sessionwarden-detect"), cluster.env("sessionwarden-detect")
    )
    service = cluster.settings("sessionwarden-service")
    listener = RevocationListener.from_settings(service, load_policy(DETECT_POLICY))
    try:
        enforcer.wait_assigned(90)
        detect.wait_assigned(90)
        listener.start(timeout=30)
        assert listener.wait_ready(30)
        producer = cluster.settings("sessionwarden-producer")
        sid = f"sec-{uuid.uuid4().hex[:8]}"
        with AuthEventPublisher(
            producer.kafka.bootstrap_servers,
            producer.topics.input,
            **KafkaSecurity.from_settings(producer.kafka).librdkafka(),
        ) as publisher:
            publisher.publish(login_doc(sid, "u-sec", time.time()))
            publisher.publish(role_change_doc("u-sec-grant", time.time(), ["admin"]))
        wait_until(lambda: listener.is_revoked("acme", sid), 30, "the idle revocation")
        assert "idle_timeout" == listener.revocation("acme", sid).reason  # type: ignore[union-attr]
        assert not listener.is_revoked("other-tenant", sid)
        team = cluster.settings("sessionwarden-security")
        security = KafkaSecurity.from_settings(team.kafka).librdkafka()

        def alert_for_grant() -> list[dict[str, Any]]:
            records = read_topic(
                team.kafka.bootstrap_servers, team.topics.alerts, timeout=1.0, **security
            )
            return [d for _, v in records if (d := orjson.loads(v))["user_id"] == "u-sec-grant"]

        alerts = wait_until(alert_for_grant, 60, "the detectors' alert on the sensitive grant")
        assert ["privilege_escalation"] == [a["kind"] for a in alerts]
    finally:
        listener.close()
        detect.stop()
        enforcer.stop()
    assert 0 == enforcer.proc.returncode, enforcer.log()


def test_an_operator_ends_a_users_sessions_over_sasl_ssl_with_only_its_acls(
    cluster: Cluster,
) -> None:
    """`sessionwarden revoke` as the operator principal writes its command and reads the
    enforcer's answer; the enforcer reads commands under its own ACLs."""
    policy = REPO / "streams/sessionwarden/policy/shipped/default.toml"  # nothing times out
    enforcer = EnforcerProcess(
        cluster.settings("sessionwarden-enforcer"),
        policy=policy,
        **cluster.env("sessionwarden-enforcer"),
    )
    try:
        enforcer.wait_assigned(90)
        producer = cluster.settings("sessionwarden-producer")
        user = f"u-op-{uuid.uuid4().hex[:6]}"
        with AuthEventPublisher(
            producer.kafka.bootstrap_servers,
            producer.topics.input,
            **KafkaSecurity.from_settings(producer.kafka).librdkafka(),
        ) as publisher:
            publisher.publish(login_doc(f"{user}-1", user, time.time()))
            publisher.publish(login_doc(f"{user}-2", user, time.time()))
        env = {**cluster.env("sessionwarden-operator"), "PYTHONPATH": "streams:."}
        revoke = cluster.cli(
            env, "revoke", "--tenant", "acme", "--user", user, "--reason-admin", "compromised",
            "--timeout", "60", timeout=120,
        )  # fmt: skip
    finally:
        enforcer.stop()
    assert 0 == revoke.returncode, revoke.stderr + enforcer.log()[-3000:]
    assert revoke.stdout.startswith(f"revoked 2 sessions of user {user} of tenant acme")
    assert [] == [m for m in enforcer.messages() if m.get("level") == "error"]


def test_a_record_on_the_wrong_partition_is_forwarded_under_the_enforcers_acls(
    cluster: Cluster,
) -> None:
    """A producer with another partitioner (librdkafka's default, kcat's) may put a login on
    any partition; the enforcer moves it to its key's partition inside its transaction. Its
    ACLs must allow that, or one such record stops revocations for the whole cluster."""
    enforcer_settings = cluster.settings("sessionwarden-enforcer")
    user = next(
        u
        for u in (f"u-fwd-{i}" for i in range(100))
        if murmur2_partition(u.encode(), PARTITIONS) == 1
    )
    sid = f"fwd-{uuid.uuid4().hex[:8]}"
    key, value = to_wire(login_doc(sid, user, time.time()))
    team = cluster.settings("sessionwarden-security")

    def revoked() -> list[dict[str, Any]]:
        records = read_topic(
            team.kafka.bootstrap_servers,
            team.topics.revocations,
            timeout=1.0,
            **KafkaSecurity.from_settings(team.kafka).librdkafka(),
        )
        return [d for _, v in records if (d := orjson.loads(v)).get("session_id") == sid]

    with EnforcerProcess(
        enforcer_settings, policy=DETECT_POLICY, **cluster.env("sessionwarden-enforcer")
    ) as enforcer:
        enforcer.wait_assigned(90)
        producer = Producer(
            {**cluster.client("sessionwarden-producer"), "enable.idempotence": False}
        )
        producer.produce(enforcer_settings.topics.input, value, key, partition=0)
        assert 0 == producer.flush(15)
        rows = wait_until(revoked, 30, "the idle revocation of the forwarded login")
    assert ["idle_timeout"] == [row["reason"] for row in rows]


def test_the_enforcer_reads_the_facts_its_snapshots_are_checked_against(cluster: Cluster) -> None:
    """With local snapshots, every restore first asks for the changelog's cluster id, topic id
    and tombstone retention; refused, each restore is a full one from the changelog."""
    enforcer = cluster.settings("sessionwarden-enforcer")
    admin = AdminClient(cluster.client("sessionwarden-enforcer"))
    facts = changelog_facts(admin, enforcer.topics.enforcer_state, timeout=15)
    assert None not in (facts.cluster_id, facts.topic_id)
    assert facts.max_age_s > 0


def test_the_caep_transmitter_signs_under_the_enforcers_acls(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The transmitter runs beside the enforcer as the same principal: its consumer group,
    its reads of revocations and audit, and its idempotent producer must all be granted."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from sessionwarden.ssf.tokens import read_unverified
    from sessionwarden.ssf.vocabulary import SESSION_ESTABLISHED

    key_file = tmp_path / "caep.pem"
    key_file.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    enforcer_settings = cluster.settings("sessionwarden-enforcer")
    caep = {
        "SESSIONWARDEN_CAEP_ENABLED": "true",
        "SESSIONWARDEN_CAEP_ISSUER": "https://sessionwarden.example",
        "SESSIONWARDEN_CAEP_AUDIENCES": "https://rp.example",
        "SESSIONWARDEN_CAEP_SIGNING_KEY_FILE": str(key_file),
    }
    env = {**cluster.env("sessionwarden-enforcer"), **caep}
    reader = Consumer({**cluster.client("admin"), "group.id": "test-caep-reader"})
    sid = f"caep-{uuid.uuid4().hex[:8]}"
    opaque = SessionHasher("test-salt")(sid)
    try:
        with EnforcerProcess(enforcer_settings, policy=DETECT_POLICY, **env) as enforcer:
            enforcer.wait_assigned(90)
            producer = cluster.settings("sessionwarden-producer")
            with AuthEventPublisher(
                producer.kafka.bootstrap_servers,
                producer.topics.input,
                **KafkaSecurity.from_settings(producer.kafka).librdkafka(),
            ) as publisher:
                publisher.publish(login_doc(sid, "u-caep", time.time()))
            topic = enforcer_settings.topics.caep
            reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])

            def established() -> bool:
                for msg in reader.consume(100, 0.2):
                    if msg.error() is None:
                        _, claims = read_unverified(msg.value())
                        event = claims["events"].get(SESSION_ESTABLISHED)
                        if claims["sub_id"]["session"]["id"] == opaque and event is not None:
                            return True
                return False

            wait_until(established, 30, "the session-established token")
            assert [] == [m for m in enforcer.messages() if m.get("level") == "error"]
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("user", "topic"),
    [
        ("sessionwarden-producer", "revocations"),  # forge or suppress revocations
        ("sessionwarden-service", "input"),  # forge a grant
        ("sessionwarden-service", "revocations"),  # a subscriber forging revocations
        ("sessionwarden-detect", "revocations"),  # a compromised detector ending sessions
        ("sessionwarden-detect", "input"),  # ... or granting them
        ("sessionwarden-detect", "enforcer_state"),
        ("sessionwarden-security", "input"),
        ("sessionwarden-security", "revocations"),  # investigating never changes sessions
        ("sessionwarden-producer", "enforcer_state"),  # plant state for the next restore
        ("sessionwarden-producer", "audit"),  # forge the trail the detectors judge
        ("sessionwarden-sink", "revocations"),  # the sink forging or burying revocations
        ("sessionwarden-sink", "input"),  # ... or granting sessions
        # Only operators end sessions on command.
        *(
            (user, "commands")
            for user in (
                "sessionwarden-producer",
                "sessionwarden-service",
                "sessionwarden-detect",
                "sessionwarden-security",
                "sessionwarden-sink",
            )
        ),
        ("sessionwarden-operator", "revocations"),  # no verdict without the enforcer
        ("sessionwarden-operator", "input"),  # no forged grant
    ],
)
def test_a_principal_cannot_write_what_its_acls_do_not_grant(
    cluster: Cluster, user: str, topic: str
) -> None:
    """The authorizer, not the client, refuses the write."""
    name = getattr(cluster.settings(user).topics, topic)
    value = encode(revocation(f"forged-{uuid.uuid4().hex[:6]}"))
    error = _produce(cluster.client(user), name, value)
    assert error is not None and DENIED == error.code(), error


@pytest.mark.parametrize(
    ("user", "topic"),
    [
        ("sessionwarden-producer", "revocations"),
        ("sessionwarden-service", "audit"),
        ("sessionwarden-detect", "input"),  # detectors see the audit trail, not raw events
        ("sessionwarden-detect", "revocations"),
        ("sessionwarden-sink", "input"),  # the sink sees revocations, not raw auth events
    ],
)
def test_a_principal_cannot_read_what_its_acls_do_not_grant(
    cluster: Cluster, user: str, topic: str
) -> None:
    """A producer must not learn who was revoked; a service must not read the audit trail."""
    name = getattr(cluster.settings(user).topics, topic)
    metadata = AdminClient(cluster.client(user)).list_topics(name, timeout=15).topics[name]
    assert metadata.error is not None and DENIED == metadata.error.code()
    reader = cluster.settings(user)
    records = read_topic(
        reader.kafka.bootstrap_servers,
        name,
        timeout=5,
        **KafkaSecurity.from_settings(reader.kafka).librdkafka(),
    )
    with pytest.raises(TopicUnavailable, match="Topic authorization failed"):
        next(records)


def _sink_consumer(cluster: Cluster, **overrides: Any) -> tuple[Settings, Consumer]:
    """The sink's own consumer configuration (group, read_committed, no auto commit), logged
    in as the sink's principal."""
    settings = cluster.settings("sessionwarden-sink", **overrides)
    config = {**consumer_config(settings), **client_config(settings.kafka), "log_level": 0}
    return settings, Consumer(config)


def test_the_sink_principal_reads_revocations_and_commits_its_group(cluster: Cluster) -> None:
    """With only its own ACLs the PostgreSQL sink's consumer finds the topic, joins its group,
    reads a revocation the enforcer wrote and commits its position in that group."""
    sink, consumer = _sink_consumer(cluster)
    topic = sink.topics.revocations
    sid = f"sink-{uuid.uuid4().hex[:8]}"
    enforcer = cluster.client("sessionwarden-enforcer")
    assert None is _produce(enforcer, topic, encode(revocation(sid)))
    try:
        assert None is consumer.list_topics(topic, timeout=15).topics[topic].error
        consumer.subscribe([topic])

        def ours() -> Message | None:
            msg = consumer.poll(0.5)
            assert msg is None or msg.error() is None, msg.error()
            return msg if msg is not None and sid.encode() in (msg.value() or b"") else None

        msg = wait_until(ours, 60, "the revocation, read as the sink's principal")
        consumer.commit(message=msg, asynchronous=False)
        [committed] = consumer.committed([TopicPartition(topic, msg.partition())], timeout=15)
        assert (msg.offset() + 1, None) == (committed.offset, committed.error)
    finally:
        consumer.close()


def test_the_sink_principal_cannot_join_another_group(cluster: Cluster) -> None:
    """Joining the enforcer's group would take partitions of auth.events from the enforcer."""
    enforcer_group = cluster.settings("sessionwarden-enforcer").enforcer.group_id
    sink, consumer = _sink_consumer(cluster, pg_sink_group_id=enforcer_group)
    try:
        consumer.subscribe([sink.topics.revocations])

        def refusal() -> KafkaError | None:
            msg = consumer.poll(0.5)
            assert msg is None or msg.error() is not None, "a record read in a foreign group"
            return msg.error() if msg is not None else None

        error = wait_until(refusal, 30, "the group authorization failure")
        assert KafkaError.GROUP_AUTHORIZATION_FAILED == error.code(), error
    finally:
        consumer.close()


def test_the_dashboard_of_the_security_principal_shows_the_lag_of_the_enforcer_and_detectors(
    cluster: Cluster,
) -> None:
    """The dashboard runs as the security team: besides reading alerts, audit and revocations
    it must see how far the enforcer and the detectors are behind, or an outage looks calm."""
    from sessionwarden.detect.app import app_id
    from sessionwarden.web.dashboard.feed import DashboardFeed
    from sessionwarden.web.dashboard.view import DashboardState

    team = cluster.settings("sessionwarden-security")
    state = DashboardState(show_session=lambda sid: sid)
    lock = threading.Lock()
    feed = DashboardFeed(team, state, lock, lambda: None, app_id(team), lag_every_s=0.2)
    feed.start(timeout=15)
    try:

        def lags() -> dict[str, int | None] | None:
            with lock:
                lag = state.snapshot(time.time())["lag"]
            found = {name: entry["lag"] for name, entry in lag.items()}
            return found if {"enforcer", "detectors"} <= found.keys() else None

        found = wait_until(lags, 30, "a lag probe of both groups")
        assert [] == [name for name, lag in found.items() if lag is None], found
        enforcer = cluster.client("sessionwarden-enforcer")
        assert None is _produce(enforcer, team.topics.revocations, encode(revocation("dash")))
        wait_until(lambda: feed.stats["records"], 30, "the revocation on the dashboard")
        assert {"records_skipped": 0, "feed_errors": 0} == {
            k: feed.stats[k] for k in ("records_skipped", "feed_errors")
        }
    finally:
        feed.stop()


def test_the_security_principal_sees_the_offsets_of_auth_events_but_not_a_record(
    cluster: Cluster,
) -> None:
    """DESCRIBE for the dashboard's lag must not become a way to read raw auth events."""
    producer = cluster.client("sessionwarden-producer")
    topic = cluster.settings("sessionwarden-producer").topics.input
    secret = f"raw-{uuid.uuid4().hex[:8]}"
    assert None is _produce(producer, topic, orjson.dumps(login_doc(secret, "u", time.time())))
    consumer = Consumer(
        {**cluster.client("sessionwarden-security"), "group.id": "sessionwarden-tail-x"}
    )
    try:
        meta = consumer.list_topics(topic, timeout=15).topics[topic]
        assert None is meta.error
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        values: list[bytes] = []

        def refusal() -> KafkaError | None:
            msgs = consumer.consume(100, 0.5)
            values.extend(m.value() or b"" for m in msgs if m.error() is None)
            return next((m.error() for m in msgs if m.error() is not None), None)

        error = wait_until(refusal, 30, "the fetch to be refused")
        assert (DENIED, []) == (error.code(), values)
    finally:
        consumer.close()


def test_the_product_publisher_of_a_service_principal_is_refused_on_auth_events(
    cluster: Cluster,
) -> None:
    """The idempotent publisher surfaces the refusal as a DeliveryError, not a hang."""
    service = cluster.settings("sessionwarden-service")
    config = {
        **KafkaSecurity.from_settings(service.kafka).librdkafka(),
        "message.timeout.ms": 10_000,
    }
    publisher = AuthEventPublisher(service.kafka.bootstrap_servers, service.topics.input, **config)
    publisher.publish(login_doc("forged", "mallory", time.time(), roles=["admin"]))
    with pytest.raises(DeliveryError, match=r"(?i)authoriz"):
        publisher.flush(20)


def _one_line_failure(done: subprocess.CompletedProcess[str], secret: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert 2 == done.returncode, done.stderr
    assert 1 == len(lines), done.stderr
    assert "Traceback" not in done.stderr and secret not in done.stderr
    return lines[0]


def test_a_wrong_password_ends_the_command_with_one_clear_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A typo in a secret must be reported at once, not retried forever."""
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    env = {**cluster.env("sessionwarden-service"),
           "SESSIONWARDEN_KAFKA_SASL_PASSWORD_FILE": str(wrong)}  # fmt: skip
    started = time.monotonic()
    line = _one_line_failure(cluster.cli(env, "tail", "revocations"), "not-the-password")
    assert time.monotonic() - started < 30
    assert line.startswith(f"sessionwarden: Kafka at {cluster.broker.bootstrap}")
    assert "authentication failed" in line


def test_an_untrusted_ca_ends_the_command_with_one_clear_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A broker whose certificate we cannot verify is refused, with the reason."""
    other_ca, _ = secure.make_ca(tmp_path / "other", "Somebody else's CA")
    env = {**cluster.env("sessionwarden-service"), "SESSIONWARDEN_KAFKA_SSL_CA_FILE": str(other_ca)}
    line = _one_line_failure(cluster.cli(env, "tail", "revocations"), "password")
    assert "TLS handshake failed" in line and "certificate verify failed" in line


def test_a_listener_with_a_wrong_password_fails_to_start_with_the_reason(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A service must learn at start-up that its login is wrong, not serve fail-closed 503s."""
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    service = cluster.settings("sessionwarden-service", kafka_sasl_password_file=str(wrong))
    listener = RevocationListener.from_settings(service, max_lifetime_s=60)
    try:
        with pytest.raises(ListenerError, match="authentication failed") as caught:
            listener.start(timeout=5)
        assert "not-the-password" not in str(caught.value)
    finally:
        listener.close()


def test_the_detect_worker_with_an_untrusted_ca_exits_with_one_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The faust worker must not retry forever against a broker it cannot verify."""
    other_ca, _ = secure.make_ca(tmp_path / "other", "Somebody else's CA")
    env = {**cluster.env("sessionwarden-detect"), "SESSIONWARDEN_KAFKA_SSL_CA_FILE": str(other_ca)}
    done = subprocess.run(
        [sys.executable, "-m", "sessionwarden.detect"],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = _one_line_failure(done, "password")
    assert line.startswith("sessionwarden detect: Kafka at") and "TLS handshake failed" in line


def test_aiokafka_clients_log_in_with_the_same_settings(cluster: Cluster) -> None:
    """asyncio code using aiokafka gets TLS and SCRAM from the one settings group, and the
    authorizer treats it like any other client of the principal."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError

    producer = cluster.settings("sessionwarden-producer")

    async def scenario() -> None:
        client = AIOKafkaProducer(
            bootstrap_servers=producer.kafka.bootstrap_servers,
            enable_idempotence=False,
            **KafkaSecurity.from_settings(producer.kafka).aiokafka(),
        )
        await client.start()
        try:
            event = login_doc(f"aio-{uuid.uuid4().hex[:6]}", "u-aio", time.time())
            await client.send_and_wait(producer.topics.input, orjson.dumps(event), b"u-aio")
            with pytest.raises(TopicAuthorizationFailedError):
                await client.send_and_wait(producer.topics.revocations, b"{}", b"forged")
        finally:
            await client.stop()

    asyncio.run(scenario())
