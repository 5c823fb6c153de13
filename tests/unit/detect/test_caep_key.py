"""The detectors never hold the key receivers trust for session events: they start and run
without it, and sign their risk-level-change tokens with a key and issuer of their own."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sessionwarden.caep.events import CaepConfig, caep_events_for
from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.contracts.codec import encode
from sessionwarden.detect.app import DetectShell, create_app
from sessionwarden.detect.engine import Engine
from sessionwarden.errors import ConfigError
from sessionwarden.ssf.tokens import SetError, read_unverified
from sessionwarden.ssf.vocabulary import RISK_LEVEL_CHANGE
from tests.unit.detect.factories import T0, ended_used, policy
from tests.unit.sdk.fakes import revocation

ENFORCER_ISSUER = "https://sessionwarden.example"
DETECT_ISSUER = "https://sessionwarden.example/detectors"


def pem_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def verifies(token: bytes, key: ec.EllipticCurvePublicKey) -> bool:
    signing_input, _, signature = token.rpartition(b".")
    raw = base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
    except Exception:
        return False
    return True


def caep_settings(tmp_path: Path, **extra: Any) -> Settings:
    """CAEP on, the enforcer's key configured at a path this process cannot read."""
    return load_settings(
        caep_enabled=True,
        caep_issuer=ENFORCER_ISSUER,
        caep_audiences="https://rp.example",
        caep_signing_key_file=str(tmp_path / "not-here" / "enforcer-caep.pem"),
        **extra,
    )


class FakeTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_the_detectors_start_without_the_enforcers_signing_key(tmp_path: Path) -> None:
    """A shared key would let a compromised detector sign session-revoked tokens."""
    settings = caep_settings(tmp_path)
    app = create_app(settings, policy(), data_dir=tmp_path / "data")
    assert app.conf.id.endswith("sessionwarden-detect")
    assert CaepConfig.for_detectors(settings) is None  # no key of their own: no risk tokens


def test_the_detectors_sign_risk_tokens_with_their_own_key_and_issuer(tmp_path: Path) -> None:
    """Receivers trust the enforcer's issuer for session events; the detectors' is another."""
    detect_key = pem_key(tmp_path / "detect.pem")
    settings = caep_settings(
        tmp_path,
        detect_caep_issuer=DETECT_ISSUER,
        detect_caep_signing_key_file=str(tmp_path / "detect.pem"),
        detect_caep_key_id="detect-1",
    )
    create_app(settings, policy(), data_dir=tmp_path / "data")  # builds without the other key
    config = CaepConfig.for_detectors(settings)
    assert config is not None
    users: dict[Any, bytes] = {}
    alerts, caep = FakeTopic(), FakeTopic()
    shell = DetectShell(Engine(policy()), users, alerts, "salt", config, caep)
    event = SimpleNamespace(
        value=encode(ended_used("alice", "s-1", T0)),
        message=SimpleNamespace(topic="audit", partition=0, offset=0),
    )
    asyncio.run(shell.handle(event))
    [(_, token)] = caep.sent
    header, claims = read_unverified(token)
    assert ("ES256", "detect-1") == (header["alg"], header["kid"])
    assert (DETECT_ISSUER, [RISK_LEVEL_CHANGE]) == (claims["iss"], list(claims["events"]))
    assert verifies(token, detect_key.public_key())


def test_the_detectors_config_cannot_sign_session_events(tmp_path: Path) -> None:
    """Even with the detectors' own key, no session-revoked or token-claims-change comes out."""
    pem_key(tmp_path / "detect.pem")
    settings = caep_settings(
        tmp_path,
        detect_caep_issuer=DETECT_ISSUER,
        detect_caep_signing_key_file=str(tmp_path / "detect.pem"),
    )
    config = CaepConfig.for_detectors(settings)
    assert config is not None
    with pytest.raises(SetError, match="does not sign revocation"):
        caep_events_for(dict(revocation("s-1")), config)


@pytest.mark.parametrize(
    ("issuer", "same_file", "why"),
    [
        (ENFORCER_ISSUER, False, "detect_caep_issuer"),
        ("", False, "detect_caep_issuer"),
        (DETECT_ISSUER, True, "detect_caep_signing_key_file"),
    ],
)
def test_the_detectors_issuer_and_key_must_differ_from_the_enforcers(
    tmp_path: Path, issuer: str, same_file: bool, why: str
) -> None:
    """Receivers tell the two apart by issuer and key; sharing either undoes the split."""
    shared = tmp_path / "shared.pem"
    pem_key(shared)
    with pytest.raises(ConfigError, match=why):
        CaepConfig.for_detectors(
            load_settings(
                caep_enabled=True,
                caep_issuer=ENFORCER_ISSUER,
                caep_audiences="https://rp.example",
                caep_signing_key_file=str(shared),
                detect_caep_issuer=issuer,
                detect_caep_signing_key_file=str(shared if same_file else tmp_path / "d.pem"),
            )
        )
