"""With CAEP on, the enforcer publishes signed Security Event Tokens beside its own records
(signed by its transmitter, outside the enforcer's transactions)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sessionwarden.config.settings import Settings
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.ssf.tokens import read_unverified
from sessionwarden.ssf.vocabulary import SESSION_ESTABLISHED, SESSION_REVOKED
from tests.integration.harness import EnforcerProcess, login_doc, logout_doc, wait_until


def _verify_es256(token: bytes, key: ec.EllipticCurvePublicKey) -> None:
    """Raises InvalidSignature unless the compact JWS verifies."""
    signing_input, _, signature = token.rpartition(b".")
    raw = base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))


def test_login_and_logout_become_signed_session_established_and_session_revoked(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """Receivers of the Shared Signals stream learn of the session and of its end, and can
    check that the tokens come from us."""
    settings = settings_factory()
    private = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "caep.pem"
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    proc = EnforcerProcess(
        settings,
        SESSIONWARDEN_CAEP_ENABLED="true",
        SESSIONWARDEN_CAEP_ISSUER="https://sessionwarden.example",
        SESSIONWARDEN_CAEP_AUDIENCES="https://rp.example",
        SESSIONWARDEN_CAEP_SIGNING_KEY_FILE=str(key_file),
        SESSIONWARDEN_CAEP_KEY_ID="k1",
    )
    raw: list[bytes] = []
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"{settings.topics.prefix}caep",
            "isolation.level": "read_committed",
            "log_level": 3,
        }
    )
    tokens: list[tuple[dict, dict]] = []
    try:
        proc.wait_assigned()
        now = time.time()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("caep-1", "caep-user", now, risk="low"))
            pub.publish(logout_doc("caep-1", "caep-user", now + 0.5))
        consumer.assign(
            [TopicPartition(settings.topics.caep, p, OFFSET_BEGINNING) for p in range(3)]
        )

        def two_tokens() -> bool:
            for msg in consumer.consume(100, 0.2):
                if msg.error() is None:
                    raw.append(msg.value())
                    tokens.append(read_unverified(msg.value()))
            return len(tokens) >= 2

        wait_until(two_tokens, 20, "two CAEP tokens")
    finally:
        consumer.close()
        proc.stop()
    # Signed outside the transactions, from two topics: ordered by event_timestamp, not offset.
    by_type = {next(iter(claims["events"])): (header, claims) for header, claims in tokens}
    assert [SESSION_ESTABLISHED, SESSION_REVOKED] == sorted(by_type)
    for token in raw:
        _verify_es256(token, private.public_key())
    for header, claims in tokens:
        assert ("secevent+jwt", "ES256", "k1") == (header["typ"], header["alg"], header["kid"])
        assert ("https://sessionwarden.example", "https://rp.example") == (
            claims["iss"],
            claims["aud"],
        )
        assert "sub" not in claims and "exp" not in claims
        assert 1 == len(claims["events"])
    revoked = by_type[SESSION_REVOKED][1]["events"][SESSION_REVOKED]
    assert "user" == revoked["initiating_entity"]
    # The live session's id never leaves as is: both tokens name it by the same keyed hash.
    opaque = SessionHasher("test-salt")("caep-1")
    assert [opaque, opaque] == [c["sub_id"]["session"]["id"] for _, c in tokens]
    assert all(b"caep-1" not in token for token in raw)
