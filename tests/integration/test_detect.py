"""The detect worker on the real broker, fed by a real enforcer: every detector fires once for
its scenario and never for its benign twin, and counts survive a restart of the worker."""

from __future__ import annotations

import base64
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sessionwarden.config.settings import Settings
from sessionwarden.kafka.topics import delete_topics
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.ssf.tokens import read_unverified
from sessionwarden.ssf.vocabulary import RISK_LEVEL_CHANGE
from tests.integration.harness import (
    DETECT_POLICY,
    Collector,
    DetectProcess,
    EnforcerProcess,
    activity_doc,
    login_doc,
    logout_doc,
    role_change_doc,
    wait_drained,
    wait_until,
)


@pytest.fixture
def env(
    settings_factory: Callable[..., Settings], admin: AdminClient
) -> Iterator[tuple[Settings, EnforcerProcess, DetectProcess]]:
    settings = settings_factory()
    enforcer = EnforcerProcess(settings, policy=DETECT_POLICY)
    detect = DetectProcess(settings)
    try:
        enforcer.wait_assigned()
        detect.wait_assigned()
        yield settings, enforcer, detect
    finally:
        detect.stop()
        enforcer.stop()
        # faust's changelog topics carry the prefix too; settings_factory does not know them.
        delete_topics(admin, prefix=settings.topics.prefix)


def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of a topic up to its current end (read_committed), in one pass."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-all-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        docs: list[dict[str, Any]] = []

        def done() -> bool:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None and msg.value() is not None:
                    docs.append(orjson.loads(msg.value()))
            positions = consumer.position([TopicPartition(topic, p) for p in parts])
            return all(tp.offset >= ends[tp.partition] for tp in positions if ends[tp.partition])

        wait_until(done, 20, f"reading {topic} to its end")
        return docs
    finally:
        consumer.close()


def wait_audit(audit: Collector, expected: dict[str, int]) -> None:
    def complete() -> bool:
        seen = Counter(d["user_id"] for d in audit.docs())
        return all(seen[user] >= n for user, n in expected.items())

    wait_until(complete, 30, f"the enforcer's audit records for {sorted(expected)}")


def scenario(now: float) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Auth events for every detector and its benign twin; and the audit records they yield."""
    events: list[dict[str, Any]] = []
    # Repeated expirations: three idle timeouts within 30 s vs. three spread over 80 s.
    for i, offset in enumerate((20, 19, 18)):
        events.append(login_doc(f"burst-{i}", "exp-burst", now - offset))
    for i, offset in enumerate((100, 60, 20)):
        events.append(login_doc(f"trickle-{i}", "exp-trickle", now - offset))
    # Concurrent sessions: four at once vs. three (max 3); all log out before their idle end.
    for user, n in (("conc-many", 4), ("conc-few", 3)):
        events += [login_doc(f"{user}-{i}", user, now, risk="low") for i in range(n)]
        events += [logout_doc(f"{user}-{i}", user, now + 0.5) for i in range(n)]
    # Stepwise escalation: two one-rank grants 5 s apart vs. 60 s apart (window 20 s).
    events += [role_change_doc("esc-step", now - 10, ["viewer"])]
    events += [role_change_doc("esc-step", now - 5, ["editor"])]
    events += [role_change_doc("esc-slow", now - 60, ["viewer"])]
    events += [role_change_doc("esc-slow", now, ["editor"])]
    # Self-grant vs. the same grant by an administrator; a sensitive grant.
    self_grant = role_change_doc("esc-self", now, ["viewer"])
    self_grant["actor"] = "esc-self"
    events += [self_grant, role_change_doc("esc-self-twin", now, ["viewer"])]
    events += [role_change_doc("esc-sensitive", now, ["admin"])]
    # A one-rank grant followed by a payment 2 s later vs. 30 s later (within 5 s).
    for user, grant_at in (("esc-then-pay", now - 2), ("esc-pay-late", now - 30)):
        events += [role_change_doc(user, grant_at, ["viewer"])]
        events += [login_doc(f"{user}-s", user, now - 1, risk="low")]
        events += [activity_doc(f"{user}-s", user, now, action="payments.send")]
    # Activity after logout vs. activity before it.
    events += [login_doc("used-after-s", "used-after", now - 1, risk="low")]
    events += [logout_doc("used-after-s", "used-after", now)]
    events += [activity_doc("used-after-s", "used-after", now + 0.5)]
    events += [login_doc("used-before-s", "used-before", now - 1, risk="low")]
    events += [activity_doc("used-before-s", "used-before", now - 0.5)]
    events += [logout_doc("used-before-s", "used-before", now)]
    audit_records = {
        "exp-burst": 6,
        "exp-trickle": 6,
        "conc-many": 8,
        "conc-few": 6,
        "esc-step": 2,
        "esc-slow": 2,
        "esc-self": 1,
        "esc-self-twin": 1,
        "esc-sensitive": 1,
        "esc-then-pay": 3,
        "esc-pay-late": 3,
        "used-after": 3,
        "used-before": 2,
    }
    return events, audit_records


def test_each_detector_fires_once_for_its_scenario_and_never_for_the_benign_twin(
    env: tuple[Settings, EnforcerProcess, DetectProcess],
) -> None:
    """The product's promise: real anomalies alert exactly once, ordinary use stays quiet."""
    settings, _, detect = env
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    alerts = Collector(settings.kafka.bootstrap_servers, settings.topics.alerts)
    events, audit_records = scenario(time.time())
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        for doc in events:
            pub.publish(doc)
    wait_audit(audit, audit_records)
    audit.close()
    poison = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
    poison.produce(settings.topics.audit, b"\xff\xfenot json", b"exp-burst")
    poison.produce(settings.topics.audit, b'{"type": "teleport"}', b"conc-many")
    poison.flush(10)
    wait_drained(settings, alerts, "end")  # the sentinels come after the poison
    alerts.close()
    found = Counter(
        (d["user_id"], d["kind"])
        for d in read_all(settings.kafka.bootstrap_servers, settings.topics.alerts)
        if not d["user_id"].startswith("sentinel-")
    )
    assert {
        ("exp-burst", "repeated_expirations"): 1,
        ("conc-many", "concurrent_sessions"): 1,
        ("esc-step", "privilege_escalation"): 1,
        ("esc-self", "privilege_escalation"): 1,
        ("esc-sensitive", "privilege_escalation"): 1,
        ("esc-then-pay", "privilege_escalation"): 1,
        ("used-after", "ended_session_used"): 1,
    } == dict(found)
    assert detect.proc.poll() is None
    skipped = [m for m in detect.messages() if "skipped an undecodable" in m.get("msg", "")]
    assert 2 == len(skipped)


def test_expiration_counts_survive_a_restart_of_the_detect_worker(
    env: tuple[Settings, EnforcerProcess, DetectProcess],
) -> None:
    """Two expirations before a restart and one after are three within the window."""
    settings, _, detect = env
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    alerts = Collector(settings.kafka.bootstrap_servers, settings.topics.alerts)
    now = time.time()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        pub.publish(login_doc("r-0", "restart-u", now - 20))
        pub.publish(login_doc("r-1", "restart-u", now - 19))
    wait_audit(audit, {"restart-u": 4})
    wait_drained(settings, alerts, "before")
    assert 0 == detect.stop()
    restarted = DetectProcess(settings)
    try:
        restarted.wait_assigned()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("r-2", "restart-u", now - 18))
        wait_until(
            lambda: alerts.docs(user_id="restart-u"), 30, "the alert for the third expiration"
        )
        wait_drained(settings, alerts, "after")
    finally:
        assert 0 == restarted.stop()
    audit.close()
    alerts.close()
    found = [
        d
        for d in read_all(settings.kafka.bootstrap_servers, settings.topics.alerts)
        if d["user_id"] == "restart-u"
    ]
    assert [("repeated_expirations", 3)] == [
        (d["kind"], d["evidence"]["counts"]["expirations"]) for d in found
    ]


def _verifies(token: bytes, key: ec.EllipticCurvePublicKey) -> bool:
    signing_input, _, signature = token.rpartition(b".")
    raw = base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def test_the_detect_worker_runs_without_the_enforcers_caep_key(
    settings_factory: Callable[..., Settings], admin: AdminClient, tmp_path: Path
) -> None:
    """A compromised detector cannot sign session events: the worker never reads the
    enforcer's key (here absent), and signs its risk-level-change tokens with its own."""
    settings = settings_factory()
    key = ec.generate_private_key(ec.SECP256R1())
    detect_pem = tmp_path / "detect-caep.pem"
    detect_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    detect = DetectProcess(
        settings,
        SESSIONWARDEN_CAEP_ENABLED="true",
        SESSIONWARDEN_CAEP_ISSUER="https://sessionwarden.example",
        SESSIONWARDEN_CAEP_AUDIENCES="https://rp.example",
        SESSIONWARDEN_CAEP_SIGNING_KEY_FILE=str(tmp_path / "absent" / "enforcer-caep.pem"),
        SESSIONWARDEN_DETECT_CAEP_ISSUER="https://sessionwarden.example/detectors",
        SESSIONWARDEN_DETECT_CAEP_SIGNING_KEY_FILE=str(detect_pem),
    )
    alerts = Collector(settings.kafka.bootstrap_servers, settings.topics.alerts)
    tokens: list[bytes] = []
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"caep-{uuid.uuid4().hex[:8]}",
            "log_level": 3,
        }
    )
    try:
        detect.wait_assigned()
        wait_drained(settings, alerts, "caep")  # an alert per partition
        consumer.assign(
            [
                TopicPartition(settings.topics.caep, p, OFFSET_BEGINNING)
                for p in range(settings.kafka.partitions)
            ]
        )

        def all_tokens() -> bool:
            tokens.extend(m.value() for m in consumer.consume(100, 0.2) if m.error() is None)
            return len(tokens) >= settings.kafka.partitions

        wait_until(all_tokens, 20, "a risk-level-change token per alert")
        assert detect.proc.poll() is None, detect.log()
    finally:
        consumer.close()
        alerts.close()
        detect.stop()
        delete_topics(admin, prefix=settings.topics.prefix)
    for token in tokens:
        _, claims = read_unverified(token)
        assert "https://sessionwarden.example/detectors" == claims["iss"]
        assert [RISK_LEVEL_CHANGE] == list(claims["events"])
        assert _verifies(token, key.public_key())
