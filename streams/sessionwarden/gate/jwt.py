"""Signed JWTs: RS256 / ES256 signatures checked against a JWKS, and ``exp``, ``nbf``, ``iat``,
``iss``, ``aud`` and the header's ``typ`` checked against an injected clock. The gate reads a
session from such a token; the Shared Signals receiver verifies Security Event Tokens with the
same function (no ``exp`` there, but a required ``typ`` and an ``iat`` window).

Parsing is strict: three base64url parts without padding, JSON objects, a header whose ``alg``
is one the settings accept (never ``none``, never an HMAC: a public key is no shared secret), no
``crit`` extensions, and a key chosen by ``kid`` (or the only key of the right type). Every
refusal is a :class:`TokenRefused` with a short reason from a fixed set (a metrics label), and
never carries the token.

The keys come from a :class:`Jwks`: a file read at start, or a URL fetched and cached for
``cache_s``; a token naming an unknown ``kid`` makes it fetch again at once, at most every
``REFETCH_MIN_S`` (a key rotation is picked up; a flood of made-up key ids is not a flood of
fetches), counted from the end of the last try (a fetch that took its whole deadline is not
started again at once by the same token). Until a first fetch has succeeded nothing verifies
at all, so it is tried again every ``NO_KEYS_RETRY_S`` instead. One fetch at a time, outside the
lock: while it runs, a token whose key is already known is verified with the keys at hand;
only a token that needs the fetched keys (an unknown ``kid``, no keys yet) waits for it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sessionwarden import outbound
from sessionwarden.gate.decision import TokenRefused

log = logging.getLogger(__name__)

Clock = Callable[[], float]
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

REFETCH_MIN_S = 10.0
NO_KEYS_RETRY_S = 1.0
MAX_JWKS_BYTES = 1 << 20
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64(part: str) -> bytes:
    if _B64URL.fullmatch(part) is None or len(part) % 4 == 1:
        raise TokenRefused("token_invalid", "not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise TokenRefused("token_invalid", "not base64url") from None


def _b64_int(value: object) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError("a key parameter is missing")
    return int.from_bytes(_b64(value), "big")


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TokenRefused("token_invalid", f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise TokenRefused("token_invalid", f"{what} is not a JSON object")
    return doc


def load_key(jwk: Mapping[str, Any]) -> tuple[str, PublicKey]:
    """One JWK as (algorithm, public key): RSA (n, e) for RS256, EC P-256 (x, y) for ES256.
    Raises ValueError for any other key."""
    kty = jwk.get("kty")
    if kty == "RSA":
        key = rsa.RSAPublicNumbers(_b64_int(jwk.get("e")), _b64_int(jwk.get("n"))).public_key()
        if key.key_size < 2048:
            raise ValueError("an RSA key shorter than 2048 bits")
        return "RS256", key
    if kty == "EC" and jwk.get("crv") == "P-256":
        numbers = ec.EllipticCurvePublicNumbers(
            _b64_int(jwk.get("x")), _b64_int(jwk.get("y")), ec.SECP256R1()
        )
        return "ES256", numbers.public_key()
    raise ValueError(f"unsupported key type {kty!r}")


def parse_jwks(raw: bytes) -> dict[str | None, tuple[str, PublicKey]]:
    """The signing keys of a JWKS document by key id (``None`` for a key without one);
    keys of other types or uses are skipped (logged), a document that is not a JWKS raises
    ValueError."""
    doc = orjson.loads(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWKS document (no keys list)")
    keys: dict[str | None, tuple[str, PublicKey]] = {}
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        try:
            keys[kid if isinstance(kid, str) else None] = load_key(jwk)
        except (ValueError, TokenRefused) as exc:
            log.warning("skipping a JWKS key", extra={"kid": str(kid)[:64], "reason": str(exc)})
    return keys


class Jwks:
    """Keys from a fetch function (a file's or a URL's bytes), cached for ``cache_s``."""

    def __init__(
        self, fetch: Callable[[], bytes], cache_s: float, monotonic: Clock, refetch_min_s: float
    ) -> None:
        self._fetch = fetch
        self._cache_s = cache_s
        self._monotonic = monotonic
        self._refetch_min_s = refetch_min_s
        self._keys: dict[str | None, tuple[str, PublicKey]] | None = None
        self._fetched_at = -1e18
        self._tried_at = -1e18
        self._fetching = False
        self._done = threading.Condition()

    @classmethod
    def from_file(cls, path: Path, monotonic: Clock) -> Jwks:
        """A file's keys, read again after 60 s (a key rotated by replacing the file)."""
        return cls(path.read_bytes, 60.0, monotonic, REFETCH_MIN_S)

    @classmethod
    def from_url(cls, url: str, cache_s: float, monotonic: Clock) -> Jwks:
        def fetch() -> bytes:
            body = outbound.fetch(url, timeout_s=5, max_bytes=MAX_JWKS_BYTES)
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError("the JWKS is larger than 1 MiB")
            return body

        return cls(fetch, cache_s, monotonic, REFETCH_MIN_S)

    def key(self, kid: str | None, alg: str) -> PublicKey:
        """The key for ``kid`` (or the only key of ``alg`` when the token names none)."""
        keys = self._current(refresh=False)
        found = self._pick(keys, kid, alg)
        if found is None:
            keys = self._current(refresh=True)
            found = self._pick(keys, kid, alg)
        if found is None:
            raise TokenRefused("unknown_key")
        return found

    @staticmethod
    def _pick(
        keys: Mapping[str | None, tuple[str, PublicKey]], kid: str | None, alg: str
    ) -> PublicKey | None:
        if kid is not None:
            entry = keys.get(kid)
            return entry[1] if entry is not None and entry[0] == alg else None
        matching = [key for key_alg, key in keys.values() if key_alg == alg]
        return matching[0] if len(matching) == 1 else None

    def _current(self, refresh: bool) -> Mapping[str | None, tuple[str, PublicKey]]:
        with self._done:
            now = self._monotonic()
            expired = now - self._fetched_at >= self._cache_s
            wait = self._refetch_min_s if self._keys is not None else NO_KEYS_RETRY_S
            may_try = now - self._tried_at >= min(wait, self._refetch_min_s)
            fetch = (self._keys is None or expired or refresh) and may_try and not self._fetching
            if fetch:
                self._fetching = True
            elif self._fetching and (self._keys is None or refresh):
                self._done.wait_for(lambda: not self._fetching)  # what it brings is needed
            if not fetch:
                return self._loaded()
        keys = None
        try:
            keys = parse_jwks(self._fetch())
        except Exception as exc:  # the last good keys stay in use
            log.warning("JWKS not loaded", extra={"reason": str(exc)[:200]})
        with self._done:
            self._tried_at = self._monotonic()
            if keys is not None:
                self._keys, self._fetched_at = keys, self._tried_at
            self._fetching = False
            self._done.notify_all()
            return self._loaded()

    def _loaded(self) -> Mapping[str | None, tuple[str, PublicKey]]:
        if self._keys is None:
            raise TokenRefused("keys_unavailable")
        return self._keys


BAD_SIGNATURE = "bad signature"
"""The detail of a :class:`TokenRefused` whose signature does not verify."""


@dataclass(frozen=True)
class JwtRules:
    """What a JWT must satisfy besides its signature.

    ``typ``: the header's required ``typ`` (compared without case, an ``application/`` prefix
    allowed, as RFC 7515 says); empty: not checked. ``require_exp``: a token without ``exp`` is
    refused (Security Event Tokens have none). ``max_age_s``: ``iat`` is required and must lie
    within ``max_age_s`` before now (and at most ``leeway_s`` after it)."""

    algorithms: frozenset[str]
    issuer: str = ""
    audience: str = ""
    leeway_s: float = 30.0
    max_bytes: int = 8192
    typ: str = ""
    require_exp: bool = True
    max_age_s: float | None = None


def verify(token: str, jwks: Jwks, rules: JwtRules, now: float) -> dict[str, Any]:
    """The claims of a valid token; raises :class:`TokenRefused`. ``now`` is wall-clock time
    (``exp`` and ``nbf`` are)."""
    if len(token) > rules.max_bytes:
        raise TokenRefused("token_invalid", "too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRefused("token_invalid", "not three parts")
    header = _object(_b64(parts[0]), "the header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in rules.algorithms:
        raise TokenRefused("token_invalid", "algorithm not accepted")
    if "crit" in header:
        raise TokenRefused("token_invalid", "critical extensions")
    if rules.typ and _media_type(header.get("typ")) != rules.typ.lower():
        raise TokenRefused("token_invalid", f"typ is not {rules.typ}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenRefused("token_invalid", "kid is not a string")
    signature = _b64(parts[2])
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    key = jwks.key(kid, alg)
    try:
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                raise TokenRefused("token_invalid", BAD_SIGNATURE)
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
        else:
            raise TokenRefused("token_invalid", "key and algorithm disagree")
    except InvalidSignature:
        raise TokenRefused("token_invalid", BAD_SIGNATURE) from None
    claims = _object(_b64(parts[1]), "the claims")
    _check_times(claims, rules, now)
    if rules.issuer and claims.get("iss") != rules.issuer:
        raise TokenRefused("wrong_issuer")
    if rules.audience:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if rules.audience not in audiences:
            raise TokenRefused("wrong_audience")
    return claims


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRefused("token_invalid", f"{name} is not a number")
    return float(value)


def _media_type(typ: object) -> str | None:
    if not isinstance(typ, str):
        return None
    lowered = typ.lower()
    return lowered.removeprefix("application/") if "/" in lowered else lowered


def _check_times(claims: Mapping[str, Any], rules: JwtRules, now: float) -> None:
    leeway_s = rules.leeway_s
    exp = _number(claims, "exp")
    if exp is None and rules.require_exp:
        raise TokenRefused("token_invalid", "no exp")
    if exp is not None and now >= exp + leeway_s:
        raise TokenRefused("token_expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and now < nbf - leeway_s:
        raise TokenRefused("token_not_yet_valid")
    if rules.max_age_s is not None:
        iat = _number(claims, "iat")
        if iat is None:
            raise TokenRefused("token_invalid", "no iat")
        if now > iat + rules.max_age_s:
            raise TokenRefused("token_expired", "iat is outside the accepted window")
        if now < iat - leeway_s:
            raise TokenRefused("token_not_yet_valid", "iat is in the future")
