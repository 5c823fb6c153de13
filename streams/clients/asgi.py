"""ASGI middleware that refuses requests of revoked sessions; no web framework needed.

    app = RevocationMiddleware(app, listener, session_id_from_header("x-session-id"))

* a revoked session gets ``401`` with
  ``WWW-Authenticate: Bearer error="invalid_token", error_description="session revoked"``
  (RFC 6750 section 3): the client must authenticate again;
* while a fail-closed listener is unhealthy, requests that carry a session get ``503`` with
  ``Retry-After``: the session is not known to be revoked, the service cannot vouch for it, and
  a 401 would make every client throw its credentials away because of our outage;
* requests without a session id, and non-HTTP scopes (lifespan, websocket), pass through.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
SessionIdGetter = Callable[[Scope], "str | None"]

REVOKED_CHALLENGE = b'Bearer error="invalid_token", error_description="session revoked"'


class RevocationView(Protocol):
    """What the middleware asks of a listener (RevocationListener provides it)."""

    @property
    def fail_closed(self) -> bool: ...
    def healthy(self) -> bool: ...
    def is_revoked(self, session_id: str) -> bool: ...


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def session_id_from_header(name: str) -> SessionIdGetter:
    """Read the session id from a request header (case-insensitive); empty means none."""
    wanted = name.lower().encode("latin-1")

    def get(scope: Scope) -> str | None:
        value = _header(scope, wanted)
        if value is None:
            return None
        return value.decode("latin-1").strip() or None

    return get


def session_id_from_cookie(name: str) -> SessionIdGetter:
    """Read the session id from a cookie of the ``Cookie`` header (RFC 6265 syntax)."""

    def get(scope: Scope) -> str | None:
        raw = _header(scope, b"cookie")
        if raw is None:
            return None
        for pair in raw.decode("latin-1").split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value or None
        return None

    return get


def first_of(*getters: SessionIdGetter) -> SessionIdGetter:
    """The first session id any of ``getters`` finds (e.g. a header, then a cookie)."""

    def get(scope: Scope) -> str | None:
        for getter in getters:
            found = getter(scope)
            if found:
                return found
        return None

    return get


async def _respond(
    send: Send, status: int, body: dict[str, str], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class RevocationMiddleware:
    """Wraps an ASGI app; see the module docstring for the responses."""

    def __init__(
        self,
        app: ASGIApp,
        listener: RevocationView,
        get_session_id: SessionIdGetter,
        retry_after_s: float = 5.0,
    ) -> None:
        self.app = app
        self.listener = listener
        self.get_session_id = get_session_id
        self._retry_after = str(max(1, math.ceil(retry_after_s))).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session_id = self.get_session_id(scope)
        if session_id is None:
            await self.app(scope, receive, send)
            return
        listener = self.listener
        if listener.fail_closed and not listener.healthy():
            await _respond(
                send,
                503,
                {"error": "temporarily_unavailable", "error_description": "revocations unknown"},
                [(b"retry-after", self._retry_after)],
            )
            return
        if listener.is_revoked(session_id):
            await _respond(
                send,
                401,
                {"error": "invalid_token", "error_description": "session revoked"},
                [(b"www-authenticate", REVOKED_CHALLENGE)],
            )
            return
        await self.app(scope, receive, send)
