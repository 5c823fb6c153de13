"""Security Event Tokens (RFC 8417) on the wire: encode, sign, publish the key, read.

SSF requires explicit typing (header ``typ: secevent+jwt``), which needs a JOSE header, so
plain JSON claims are not an option on the wire. Without a signing key the token is an
Unsecured JWT (RFC 7519 section 6: ``alg: none``, empty signature); receivers must then get
integrity from the channel (Kafka ACLs, TLS). With a PEM private key, the token is a JWS:
RS256 for RSA (2048 bits or more), ES256 for P-256, signed with ``cryptography``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from sessionwarden.errors import ConfigError, SessionwardenError
from sessionwarden.ssf.vocabulary import SET_TYPE


class SetError(SessionwardenError):
    """A record that cannot become a Security Event Token, or bytes that are not one."""


class SigningUnavailable(ConfigError):
    """A signing key is configured but cannot be used."""


@dataclass(frozen=True, slots=True)
class SetSigner:
    """One private key: its JWS ``alg``, its signing function and its public JWK."""

    alg: str
    sign: Callable[[bytes], bytes] = field(repr=False)
    public_jwk: dict[str, str] = field(repr=False)


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def encode_set(
    claims: Mapping[str, Any], signer: SetSigner | None, key_id: str | None = None
) -> bytes:
    """Compact serialisation: a JWS with ``signer``, else an Unsecured JWT."""
    if signer is None:
        header: dict[str, str] = {"alg": "none", "typ": SET_TYPE}
    else:
        header = {"alg": signer.alg, "typ": SET_TYPE}
        if key_id:
            header["kid"] = key_id
    signing_input = b64url(orjson.dumps(header)) + b"." + b64url(orjson.dumps(dict(claims)))
    signature = b"" if signer is None else b64url(signer.sign(signing_input))
    return signing_input + b"." + signature


def read_unverified(token: bytes | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JOSE header and claims of a compact token, WITHOUT checking any signature (for tests
    and debugging; receivers verify against the transmitter's keys)."""
    raw = token.encode() if isinstance(token, str) else token
    parts = raw.split(b".")
    if len(parts) != 3:
        raise SetError(f"a compact JWS/JWT has 3 parts, got {len(parts)}")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
        claims = orjson.loads(b64url_decode(parts[1]))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise SetError(f"not a compact JWT: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise SetError("header and claims must be JSON objects")
    return header, claims


def jwks(signer: SetSigner | None, key_id: str | None) -> dict[str, list[dict[str, str]]]:
    """The JWK Set (RFC 7517) that verifies tokens of ``signer``: empty without a key."""
    if signer is None:
        return {"keys": []}
    key = {**signer.public_jwk, "use": "sig", "alg": signer.alg}
    if key_id:
        key["kid"] = key_id
    return {"keys": [key]}


def read_key_file(name: str, path: Path | None) -> bytes | None:
    """A PEM key file's bytes (None without a path); errors name the setting, never the key."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: {exc.strerror}") from exc


def _uint(value: int, size: int | None = None) -> str:
    raw = value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")
    return b64url(raw).decode()


@functools.lru_cache(maxsize=8)
def signer_for(pem: bytes) -> SetSigner:
    """RS256 for RSA keys, ES256 for P-256 keys; raises SigningUnavailable with the reason."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningUnavailable(f"the SET signing key is not a usable PEM key: {exc}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise SigningUnavailable(f"RS256 needs an RSA key of >= 2048 bits, got {key.key_size}")
        pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()
        numbers = key.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
        return SetSigner("RS256", lambda data: bytes(key.sign(data, pkcs1v15, sha256)), jwk)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        ecdsa = ec.ECDSA(hashes.SHA256())
        decode_dss = utils.decode_dss_signature

        def sign_es256(data: bytes) -> bytes:
            r, s = decode_dss(key.sign(data, ecdsa))  # JWS wants r || s, 32 bytes each
            return bytes(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

        point = key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": _uint(point.x, 32), "y": _uint(point.y, 32)}
        return SetSigner("ES256", sign_es256, jwk)
    raise SigningUnavailable("the SET signing key must be RSA (RS256) or EC P-256 (ES256)")
