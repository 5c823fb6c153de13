"""Who is asking, and may they: OAuth bearer tokens (RFC 6750) with the SSF scopes.

A token is vouched for by the token file (``CLIENT_ID SHA256_HEX SCOPES`` a line: the file holds
hashes only) or, failing that, by an RFC 7662 introspection endpoint. ``ssf.read`` reads a
stream's configuration and status and polls its events; ``ssf.manage`` also creates, changes
and deletes streams, their subjects, and asks for verification. Pure but for
:class:`Introspector`'s HTTP call; its answers are cached for ``CACHE_S`` (never past the
token's ``exp``), and an unreachable endpoint refuses (fail closed). Tokens it refused are
cached apart from those it vouched for, each at most ``MAX_CACHED``: a flood of made-up tokens
forgets only other made-up tokens, never a receiver's good one (which would then be asked
about again on every request). The call blocks: the API makes it off its event loop, and at
most ``MAX_IN_FLIGHT`` are made at once; a token that would need one more is
:class:`IntrospectionBusy` (the API answers 503), so a flood of made-up tokens against a slow
endpoint holds a few threads, never every worker the API has.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from sessionwarden.errors import ConfigError, SessionwardenError
from sessionwarden.outbound import fetch

log = logging.getLogger(__name__)

READ: Final = "ssf.read"
MANAGE: Final = "ssf.manage"
SCOPES: Final = frozenset({READ, MANAGE})
CACHE_S: Final = 30.0
MAX_TOKEN = 4096
MAX_CACHED = 10_000
MAX_IN_FLIGHT = 8
_LINE = re.compile(
    r"^(?P<client>[A-Za-z0-9._:@/-]{1,256})\s+(?P<hash>[0-9a-f]{64})\s+(?P<scopes>\S+)$"
)


class IntrospectionBusy(SessionwardenError):
    """As many introspection calls as allowed are under way: ask again shortly."""


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        """ssf.manage includes ssf.read."""
        return scope in self.scopes or (scope == READ and MANAGE in self.scopes)


def token_hash(token: str) -> str:
    """What the token file holds for a token (tokens are random: a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    if not authorization or len(authorization) > MAX_TOKEN + 7:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def parse_token_file(text: str, where: str = "ssf_tx_token_file") -> dict[str, Principal]:
    """Token hash -> principal; comments (#) and blank lines skipped; errors name the line."""
    table: dict[str, Principal] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"{where}, line {number}: expected CLIENT_ID SHA256_HEX SCOPES")
        scopes = frozenset(match["scopes"].split(","))
        if not scopes <= SCOPES:
            raise ConfigError(f"{where}, line {number}: scopes are ssf.read and ssf.manage")
        table[match["hash"]] = Principal(match["client"], scopes)
    return table


def introspected(doc: Any, now: float) -> tuple[Principal | None, float]:
    """An RFC 7662 answer as (principal or None, seconds it may be cached)."""
    if not isinstance(doc, dict) or doc.get("active") is not True:
        return None, CACHE_S
    client, scope, exp = doc.get("client_id"), doc.get("scope", ""), doc.get("exp")
    if not isinstance(client, str) or not client or not isinstance(scope, str):
        return None, CACHE_S
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        if exp <= now:
            return None, CACHE_S
        ttl = min(CACHE_S, exp - now)
    else:
        ttl = CACHE_S
    scopes = frozenset(scope.split()) & SCOPES
    return (Principal(client[:256], scopes) if scopes else None), ttl


_Cache = dict[str, tuple[Principal | None, float]]
"""Token hash -> (the answer, until when it is used)."""


class Introspector:
    """Asks an RFC 7662 endpoint about tokens (client_secret_basic), caching the answers."""

    def __init__(
        self,
        url: str,
        client_id: str,
        secret: str,
        clock: Callable[[], float],
        timeout_s: float = 5.0,
        send: Callable[[urllib.request.Request, float], bytes] | None = None,
    ) -> None:
        self._url = url
        basic = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}"
        self._auth = "Basic " + base64.b64encode(basic.encode()).decode()
        self._clock = clock
        self._timeout = timeout_s
        self._send = send or _post
        self._vouched: _Cache = {}
        self._refused: _Cache = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    def __call__(self, token: str) -> Principal | None:
        key, now = token_hash(token), self._clock()
        with self._lock:
            for cache in (self._vouched, self._refused):
                hit = cache.get(key)
                if hit is not None and hit[1] > now:
                    return hit[0]
        request = urllib.request.Request(
            self._url,
            data=urllib.parse.urlencode(
                {"token": token, "token_type_hint": "access_token"}
            ).encode(),
            headers={
                "Authorization": self._auth,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        if not self._slots.acquire(blocking=False):
            raise IntrospectionBusy(f"{MAX_IN_FLIGHT} token introspections are under way")
        try:
            doc = orjson.loads(self._send(request, self._timeout))
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("token introspection failed: refusing", extra={"error": type(exc).__name__})
            return None
        finally:
            self._slots.release()
        principal, ttl = introspected(doc, now)
        with self._lock:
            _keep(self._refused if principal is None else self._vouched, key, principal, now + ttl)
        return principal


def _post(request: urllib.request.Request, timeout_s: float) -> bytes:
    return fetch(request, timeout_s=timeout_s, max_bytes=65536)


def _keep(cache: _Cache, key: str, principal: Principal | None, until: float) -> None:
    """Cache an answer; a full cache is emptied first (a flood of made-up tokens then costs
    one introspection each, as it would without a cache)."""
    if len(cache) >= MAX_CACHED:
        cache.clear()
    cache[key] = (principal, until)


class Authorizer:
    """The token file first, then the introspection endpoint (when there is one)."""

    def __init__(
        self,
        table: dict[str, Principal],
        introspect: Callable[[str], Principal | None] | None = None,
    ) -> None:
        self._table = table
        self._introspect = introspect

    def __call__(self, authorization: str | None) -> Principal | None:
        token = bearer(authorization)
        if token is None:
            return None
        found = self._table.get(token_hash(token))
        if found is None and self._introspect is not None:
            found = self._introspect(token)
        return found
