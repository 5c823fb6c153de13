"""The CAEP transmitter over fakes: signs committed records outside the enforcer's
transactions, commits only what was delivered; and signed tokens are the default."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sessionwarden.caep.events import CaepConfig
from sessionwarden.caep.transmitter import CaepTransmitter
from sessionwarden.config.settings import load_settings
from sessionwarden.contracts.codec import encode
from sessionwarden.errors import ConfigError
from sessionwarden.ssf.tokens import read_unverified
from sessionwarden.ssf.vocabulary import RISK_LEVEL_CHANGE, SESSION_REVOKED
from tests.unit.sdk.fakes import revalidation, revocation, session_risk_changed
from tests.unit.stall_fakes import EndsAdmin, ends_of


class Msg:
    def __init__(self, value: bytes | None) -> None:
        self._value = value

    def error(self) -> None:
        return None

    def value(self) -> bytes | None:
        return self._value


class FakeConsumer:
    def __init__(self, values: list[bytes | None]) -> None:
        self.values = values
        self.commits = 0
        self.topics: list[str] = []

    def subscribe(self, topics: list[str]) -> None:
        self.topics = topics

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        batch, self.values = self.values[:num_messages], self.values[num_messages:]
        return [Msg(v) for v in batch]

    def commit(self, *, asynchronous: bool) -> None:
        self.commits += 1

    def seek(self, tp: TopicPartition) -> None:
        """Sought back, it stays stopped: only a new consumer resumes."""

    def close(self) -> None:
        pass

    def assignment(self) -> list[Any]:
        return []

    def position(self, partitions: list[Any]) -> list[Any]:
        return partitions

    def get_watermark_offsets(
        self, partition: Any, timeout: float = 0, cached: bool = False
    ) -> tuple[int, int]:
        return (0, 0)


class FakeProducer:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, bytes, bytes]] = []
        self._pending: list[Any] = []

    def produce(self, topic: str, value: bytes, key: bytes, *, on_delivery: Any) -> None:
        self.sent.append((topic, value, key))
        self._pending.append(on_delivery)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for callback in self._pending:
            callback("broker down" if self.fail else None, None)
        self._pending.clear()
        return 0


def es256_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def rig(values: list[bytes | None], fail: bool = False) -> tuple[CaepTransmitter, Any, Any]:
    consumer, producer = FakeConsumer(values), FakeProducer(fail)
    config = CaepConfig(
        "https://sw.example", ("https://a.example", "https://b.example"), es256_pem()
    )
    transmitter = CaepTransmitter(
        load_settings(topic_prefix="u."), config, lambda _: consumer, lambda _: producer
    )
    return transmitter, consumer, producer


def test_each_committed_record_becomes_one_signed_token_per_audience() -> None:
    """SSF wants distinct SETs per receiver; all of them signed."""
    transmitter, consumer, producer = rig([encode(revocation("s-1")), encode(revalidation("s-2"))])
    assert 4 == transmitter.step(timeout=0)
    assert 4 == len(producer.sent)
    assert {"u.sessionwarden.caep"} == {topic for topic, _, _ in producer.sent}
    header, claims = read_unverified(producer.sent[0][1])
    assert ("ES256", SESSION_REVOKED) == (header["alg"], next(iter(claims["events"])))
    assert 1 == consumer.commits


def test_signal_revocations_and_risk_changes_become_tokens() -> None:
    """Reason ``signal`` is a session-revoked like any other; the enforcer's
    session_risk_changed record a session risk-level-change, signed with its key."""
    records = [encode(revocation("s-1", reason="signal")), encode(session_risk_changed("s-2"))]
    transmitter, _, producer = rig(records)
    assert 4 == transmitter.step(timeout=0)
    kinds = [next(iter(read_unverified(value)[1]["events"])) for _, value, _ in producer.sent]
    assert [SESSION_REVOKED] * 2 + [RISK_LEVEL_CHANGE] * 2 == kinds


def test_nothing_is_committed_when_a_token_was_not_delivered() -> None:
    """At least once: a lost token is re-signed from the committed offsets, never skipped."""
    transmitter, consumer, _ = rig([encode(revocation("s-1"))], fail=True)
    with pytest.raises(Exception, match="broker down"):
        transmitter.step(timeout=0)
    assert 0 == consumer.commits


def test_records_without_a_caep_event_and_garbage_are_skipped() -> None:
    """A poison record on the audit topic must not stop the transmitter."""
    transmitter, consumer, producer = rig([b"\xffnot json", None, b'{"type":"session_ended"}'])
    assert 0 == transmitter.step(timeout=0)
    assert ([], 1, 1) == (producer.sent, transmitter.skipped, consumer.commits)


def test_caep_without_a_signing_key_needs_the_explicit_development_opt_in() -> None:
    """Anyone who can write the CAEP topic could forge an unsigned token."""
    caep = {
        "caep_enabled": True,
        "caep_issuer": "https://sw",
        "caep_audiences": "https://rp",
        "log_salt": "salt",
    }
    with pytest.raises(ConfigError, match="caep_allow_unsigned"):
        CaepConfig.from_settings(load_settings(**caep))
    config = CaepConfig.from_settings(load_settings(**caep, caep_allow_unsigned=True))
    assert config is not None and config.signing_key_pem is None


def test_the_transmitter_warns_at_start_when_tokens_are_unsigned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Development mode must be impossible to miss in the enforcer's log."""
    consumer, producer = FakeConsumer([]), FakeProducer()
    config = CaepConfig("https://sw.example", ("https://a.example",))
    transmitter = CaepTransmitter(load_settings(), config, lambda _: consumer, lambda _: producer)
    transmitter.start()
    transmitter.close()
    assert ["sessionwarden.revocations", "sessionwarden.audit"] == consumer.topics
    assert any("UNSIGNED" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_the_transmitter_warns_at_start_when_an_audience_gets_raw_session_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sending live session ids is an opt-in per audience, and never a quiet one."""
    consumer, producer = FakeConsumer([]), FakeProducer()
    config = CaepConfig(
        "https://sw.example",
        ("https://a.example", "https://b.example"),
        session_salt="salt",
        raw_session_audiences=frozenset({"https://b.example"}),
    )
    transmitter = CaepTransmitter(load_settings(), config, lambda _: consumer, lambda _: producer)
    transmitter.start()
    transmitter.close()
    [warning] = [r for r in caplog.records if "RAW session ids" in r.getMessage()]
    assert ("WARNING", ["https://b.example"]) == (warning.levelname, warning.__dict__["audiences"])


class StoppedConsumer(FakeConsumer):
    """Returns nothing while the broker's end is past its position: it stopped fetching; its
    own watermark query goes unanswered too."""

    def assignment(self) -> list[Any]:
        return [TopicPartition("u.sessionwarden.revocations", 0)]

    def position(self, partitions: list[Any]) -> list[Any]:
        return [TopicPartition(tp.topic, tp.partition, 5) for tp in partitions]

    def get_watermark_offsets(
        self, partition: Any, timeout: float = 0, cached: bool = False
    ) -> tuple[int, int]:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))


def test_a_consumer_that_stopped_fetching_is_reopened_from_the_committed_offsets() -> None:
    made: list[FakeConsumer] = []

    def consumers(config: dict[str, Any]) -> FakeConsumer:
        made.append(StoppedConsumer([]) if not made else FakeConsumer([]))
        return made[-1]

    config = CaepConfig("https://sw.example", ("https://a.example",), es256_pem())
    settings = load_settings(topic_prefix="u.", kafka_fetch_stall_s=2.0)
    broker = EndsAdmin(lambda tp: 9)  # asked by the watch, never the consumer watched
    transmitter = CaepTransmitter(
        settings, config, consumers, lambda _: FakeProducer(), ends=ends_of(broker)
    )
    transmitter.start()
    try:
        deadline = time.monotonic() + 10
        while len(made) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(made) == 2 and transmitter.reopened == 1
        assert made[1].topics == ["u.sessionwarden.revocations", "u.sessionwarden.audit"]
    finally:
        transmitter.close(timeout=2)
