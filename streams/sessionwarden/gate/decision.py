"""The gate's decision, pure: request headers -> identity -> verdict.

No sockets, no Kafka: :func:`decide` takes the request's headers, a view of the revocation set
(:class:`~sessionwarden.sdk.asgi.RevocationView`, which the listener provides), an optional JWT
verifier and the wall-clock time, and returns a :class:`Verdict`. The HTTP shell
(:mod:`sessionwarden.gate.server`) only turns that into a response and counts it.

Answers, and why these codes: nginx ``auth_request`` allows on 2xx, refuses with the same code
on 401 and 403, and turns anything else into 500; Traefik ForwardAuth and Envoy ``ext_authz``
pass any non-2xx answer on to the client.

* ``200``: no revocation is known for the session (``X-Sessionwarden-Tenant``, and
  ``X-Sessionwarden-User`` when a user source is set, name it back to the gateway);
* ``401``: the session is revoked, or the request names no session (unless anonymous requests
  are allowed), no tenant, or names either ambiguously or in a malformed or oversized way, or
  its JWT does not verify: the client must authenticate again (``WWW-Authenticate: Bearer``);
* ``403``: the session belongs to a tenant this gate does not admit;
* ``503`` (``Retry-After``): a fail-closed gate is past its staleness budget, or cannot load
  the JWT keys. The session is not known to be revoked: the gate cannot vouch for it, and a
  401 would make every client discard its credentials because of our outage. nginx turns it
  into a 500 (refused all the same; docs/GATEWAY.md maps it back to 503).

The reason is in ``X-Sessionwarden-Reason`` (one of :data:`REASONS`: a bounded metrics label);
the raw session id never leaves this module but in the verdict's ``session_id``, which the
shell hashes before it logs anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sessionwarden.errors import SessionwardenError
from sessionwarden.sdk.asgi import AmbiguousIdentity, RevocationView, from_cookie, from_header

Headers = Sequence[tuple[bytes, bytes]]
Verifier = Callable[[str, float], dict[str, Any]]
"""(token, now) -> the verified claims; raises :class:`TokenRefused`."""

REASONS: dict[str, int] = {
    "allowed": 200,
    "anonymous": 200,
    "no_session": 401,
    "no_tenant": 401,
    "invalid_request": 401,
    "too_large": 401,
    "token_invalid": 401,
    "token_expired": 401,
    "token_not_yet_valid": 401,
    "wrong_issuer": 401,
    "wrong_audience": 401,
    "unknown_key": 401,
    "revoked": 401,
    "wrong_tenant": 403,
    "stale": 503,
    "keys_unavailable": 503,
}
"""Every reason the gate gives, with its status code."""

_IDENTITY_HEADERS = (b"cookie", b"authorization")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class TokenRefused(SessionwardenError):
    """A JWT that does not pass; ``reason`` is one of :data:`REASONS` (``token_invalid``,
    ``token_expired``, ``token_not_yet_valid``, ``wrong_issuer``, ``wrong_audience``,
    ``unknown_key``, ``keys_unavailable``); the message never carries the token."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Verdict(NamedTuple):
    status: int
    reason: str
    tenant: str | None = None
    user: str | None = None
    session_id: str | None = None  # for the shell's hashed log line only; never sent

    @property
    def allowed(self) -> bool:
        return self.status == 200


def verdict(reason: str, **identity: str | None) -> Verdict:
    return Verdict(REASONS[reason], reason, **identity)


@dataclass(frozen=True)
class Source:
    """Where a value is: ``cookie``, ``header``, ``jwt`` (a claim) or ``constant``."""

    kind: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Source:
        kind, sep, name = text.partition(":")
        if not sep or not name or kind not in ("cookie", "header", "jwt", "constant"):
            raise ValueError(f"not a source: {text!r} (cookie:NAME, header:NAME, jwt:CLAIM)")
        return cls(kind, name)


class _Reader:
    """Reads one value from the request, with the asgi middleware's strict rules for cookies
    and headers (see :func:`sessionwarden.sdk.asgi.from_cookie`)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._get = (
            from_cookie(source.name)
            if source.kind == "cookie"
            else from_header(source.name)
            if source.kind == "header"
            else None
        )

    def read(self, scope: dict[str, Any], claims: dict[str, Any] | None) -> str | None:
        if self.source.kind == "constant":
            return self.source.name
        if self._get is not None:
            return self._get(scope)
        value = (claims or {}).get(self.source.name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise AmbiguousIdentity(f"claim {self.source.name} is not a string")
        # The same plain-value rules as a header's (length, characters).
        return from_header("x")({"headers": [(b"x", value.encode("utf-8"))]})


@dataclass(frozen=True)
class GateRules:
    """How the gate finds a request's identity and what it admits."""

    session: Source
    tenant: Source
    user: Source | None = None
    token: Source | None = None  # where the JWT is (header:authorization: a Bearer token)
    tenants: frozenset[str] = frozenset()  # empty: any tenant
    allow_anonymous: bool = False
    max_header_bytes: int = 8192

    @property
    def uses_jwt(self) -> bool:
        sources = (self.session, self.tenant, self.user)
        return any(s is not None and s.kind == "jwt" for s in sources)


class Gate:
    """The decision with its readers built once; :meth:`decide` is safe from any thread."""

    def __init__(
        self, rules: GateRules, view: RevocationView, verifier: Verifier | None = None
    ) -> None:
        if rules.uses_jwt and (verifier is None or rules.token is None):
            raise ValueError("a jwt: source needs a verifier and a token source")
        self.rules = rules
        self._view = view
        self._verifier = verifier
        self._session = _Reader(rules.session)
        self._tenant = _Reader(rules.tenant)
        self._user = _Reader(rules.user) if rules.user is not None else None
        self._token = _Reader(rules.token) if rules.token is not None else None
        limited = {rules.session, rules.tenant, rules.user, rules.token}
        self._limited = frozenset(
            {*_IDENTITY_HEADERS}
            | {s.name.lower().encode("latin-1") for s in limited if s and s.kind == "header"}
        )

    def decide(self, headers: Headers, now: float) -> Verdict:
        """The verdict for a request with these headers at wall-clock time ``now``."""
        for name, value in headers:
            if len(value) > self.rules.max_header_bytes and name.lower() in self._limited:
                return verdict("too_large")
        scope: dict[str, Any] = {"headers": headers}
        claims: dict[str, Any] | None = None
        try:
            if self.rules.uses_jwt:
                found = self._claims(scope, now)
                if isinstance(found, Verdict):
                    return found
                claims = found
            session_id = self._session.read(scope, claims)
            if session_id is None:
                return verdict("anonymous" if self.rules.allow_anonymous else "no_session")
            tenant = self._tenant.read(scope, claims)
            user = self._user.read(scope, claims) if self._user is not None else None
        except AmbiguousIdentity:
            return verdict("invalid_request")
        if tenant is None:
            return verdict("no_tenant", session_id=session_id)
        who = {"tenant": tenant, "user": user, "session_id": session_id}
        if self.rules.tenants and tenant not in self.rules.tenants:
            return verdict("wrong_tenant", **who)
        if self._view.fail_closed and not self._view.healthy():
            return verdict("stale", **who)
        if self._view.is_revoked(tenant, session_id):
            return verdict("revoked", **who)
        return verdict("allowed", **who)

    def _token_cookie(self, headers: Headers) -> str | None:
        """The JWT cookie: named exactly once (no other case, no second line), like
        :func:`~sessionwarden.sdk.asgi.from_cookie`, but longer than a session id may be."""
        assert self._token is not None
        name = self._token.source.name
        found: list[str] = []
        mentions = 0
        for key, line in headers:
            if key.lower() != b"cookie":
                continue
            for pair in line.decode("latin-1").split(";"):
                left, sep, value = pair.strip(" \t").partition("=")
                if sep and left.strip(" \t").lower() == name.lower():
                    mentions += 1
                    if left == name:
                        found.append(value)
        if mentions == 0:
            return None
        if mentions != 1 or len(found) != 1:
            raise AmbiguousIdentity(f"cookie {name} is named more than once or in another case")
        return found[0]

    def _claims(self, scope: dict[str, Any], now: float) -> dict[str, Any] | Verdict:
        assert self._token is not None and self._verifier is not None
        if self._token.source == Source("header", "authorization"):
            values = [v for k, v in scope["headers"] if k.lower() == b"authorization"]
            if not values:
                raw = None
            elif len(values) > 1:
                return verdict("invalid_request")
            else:
                scheme, _, raw = values[0].decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or _TOKEN.fullmatch(raw) is None:
                    return verdict("invalid_request")
        else:
            raw = self._token_cookie(scope["headers"])
            if raw is not None and _TOKEN.fullmatch(raw) is None:
                return verdict("invalid_request")
        if raw is None:
            return verdict("anonymous" if self.rules.allow_anonymous else "no_session")
        try:
            return self._verifier(raw, now)
        except TokenRefused as exc:
            return verdict(exc.reason if exc.reason in REASONS else "token_invalid")
