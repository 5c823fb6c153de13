"""SET encoding and the published key: a receiver verifies our signature with our JWKS alone."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sessionwarden.ssf.errors import INVALID_AUDIENCE, set_error
from sessionwarden.ssf.tokens import (
    SetError,
    SigningUnavailable,
    b64url_decode,
    encode_set,
    jwks,
    read_unverified,
    signer_for,
)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_an_rs256_set_verifies_with_the_public_key_rebuilt_from_the_jwks() -> None:
    """The JWKS endpoint is all a receiver has: n and e must rebuild the very key."""
    signer = signer_for(_pem(rsa.generate_private_key(65537, 2048)))
    token = encode_set({"iss": "https://sw.example", "jti": "j1"}, signer, "k1")
    header, claims = read_unverified(token)
    assert {"alg": "RS256", "typ": "secevent+jwt", "kid": "k1"} == header
    assert "j1" == claims["jti"]
    (key,) = jwks(signer, "k1")["keys"]
    assert ("RSA", "k1", "sig", "RS256") == (key["kty"], key["kid"], key["use"], key["alg"])
    public = rsa.RSAPublicNumbers(
        int.from_bytes(b64url_decode(key["e"].encode()), "big"),
        int.from_bytes(b64url_decode(key["n"].encode()), "big"),
    ).public_key()
    signing_input, signature = token.rsplit(b".", 1)
    public.verify(b64url_decode(signature), signing_input, padding.PKCS1v15(), hashes.SHA256())


def test_an_es256_jwk_has_fixed_length_coordinates() -> None:
    """JWK x and y of P-256 are 32 bytes each, even when a coordinate has leading zeros."""
    signer = signer_for(_pem(ec.generate_private_key(ec.SECP256R1())))
    (key,) = jwks(signer, None)["keys"]
    assert "kid" not in key
    assert (32, 32) == (
        len(b64url_decode(key["x"].encode())),
        len(b64url_decode(key["y"].encode())),
    )


def test_short_rsa_keys_are_refused() -> None:
    """RS256 under 2048 bits is forbidden by SSF's profile of RFC 8417."""
    with pytest.raises(SigningUnavailable, match="2048"):
        signer_for(_pem(rsa.generate_private_key(65537, 1024)))


def test_no_key_means_an_empty_jwks_and_an_unsecured_token() -> None:
    """Without a key nothing is claimed: no key published, alg none."""
    assert {"keys": []} == jwks(None, None)
    assert b"." == encode_set({"jti": "x"}, None)[-1:]
    with pytest.raises(SetError):
        read_unverified(b"a.b")


def test_set_errors_use_only_rfc_8935_codes() -> None:
    """An invented code would be meaningless to the other party."""
    assert {"err": "invalid_audience", "description": "x"} == set_error(INVALID_AUDIENCE, "x")
    with pytest.raises(ValueError, match="RFC 8935"):
        set_error("nope", "x")
