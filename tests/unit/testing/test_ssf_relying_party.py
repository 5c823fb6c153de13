"""The drill's SSF relying party decides from the SET alone: a verified session-revoked refuses
its session; a forged, foreign or replayed SET refuses nothing."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ssf.tokens import SetSigner, encode_set, jwks, signer_for
from sessionwarden.ssf.vocabulary import SESSION_REVOKED
from sessionwarden.testing.ssf_relying_party import RelyingParty, Unaccepted

ISS = "http://127.0.0.1:1"
SALT = "unit-salt"


def _signer() -> SetSigner:
    key = rsa.generate_private_key(65537, 2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return signer_for(pem)


SIGNER, OTHER = _signer(), _signer()


@pytest.fixture
def party() -> Iterator[RelyingParty]:
    found = RelyingParty(ISS, "rp", SALT, "push-token", fetch_jwks=lambda: jwks(SIGNER, "k1"))
    yield found
    found.close()


def revoked(session: str, jti: str = "j-1", **claims: Any) -> bytes:
    doc = {
        "iss": ISS, "aud": "rp", "jti": jti, "iat": int(time.time()),
        "sub_id": {"format": "complex", "user": {"format": "opaque", "id": "alice"},
                   "session": {"format": "opaque", "id": SessionHasher(SALT)(session)}},
        "events": {SESSION_REVOKED: {"event_timestamp": int(time.time())}},
        **claims,
    }  # fmt: skip
    return encode_set(doc, SIGNER, "k1")


def status(party: RelyingParty, session: str) -> int:
    request = urllib.request.Request(f"{party.url}/api/data", headers={"X-Session-Id": session})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_a_verified_session_revoked_refuses_that_session_only(party: RelyingParty) -> None:
    assert 200 == status(party, "s-1")
    party.take(revoked("s-1"))
    assert (401, 200) == (status(party, "s-1"), status(party, "s-2"))


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (encode_set({"iss": ISS, "aud": "rp", "jti": "x"}, OTHER, "k1"), "invalid_key"),
        (encode_set({"iss": ISS, "aud": "rp", "jti": "x"}, None), "invalid_request"),
        (revoked("s-1", aud="someone-else"), "invalid_audience"),
        (revoked("s-1", iss="https://evil.example"), "invalid_issuer"),
        (b"not.a-token", "invalid_request"),
    ],
)
def test_a_set_it_cannot_trust_refuses_nothing(
    party: RelyingParty, token: bytes, code: str
) -> None:
    with pytest.raises(Unaccepted) as refused:
        party.take(token)
    assert code == refused.value.code
    assert 200 == status(party, "s-1")


def test_a_replayed_jti_is_refused(party: RelyingParty) -> None:
    party.take(revoked("s-1"))
    with pytest.raises(Unaccepted):
        party.take(revoked("s-2"))
    assert 200 == status(party, "s-2")
