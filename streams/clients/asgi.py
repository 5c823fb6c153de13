"""ASGI middleware that refuses requests of revoked sessions; no web framework needed.

    app = RevocationMiddleware(
        app, listener, session_id_from_header("x-session-id"), tenant_from_header("x-tenant")
    )

A session is (tenant, session_id): the middleware takes both from the request (a single-tenant
service passes ``constant("its-tenant")`` as the tenant getter).

* a revoked session gets ``401`` with
  ``WWW-Authenticate: Bearer error="invalid_token", error_description="session revoked"``
  (RFC 6750 section 3): the client must authenticate again;
* while a fail-closed listener is unhealthy, requests that carry a session get ``503`` with
  ``Retry-After``: the session is not known to be revoked, the service cannot vouch for it, and
  a 401 would make every client throw its credentials away because of our outage;
* a request with a session id but no tenant gets ``400`` (a WebSocket: close 1008): it cannot
  be checked;
* WebSocket handshakes are checked the same way (a refused handshake is closed before it is
  accepted, which servers answer with HTTP 403); a live WebSocket is watched every
  ``websocket_check_s`` and closed with code 4401 (revoked) or 1013 (try again later:
  fail-closed and unhealthy) once its session may no longer be served;
* requests without a session id, and lifespan scopes, pass through.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ValueGetter = Callable[[Scope], "str | None"]
SessionIdGetter = ValueGetter
TenantGetter = ValueGetter

REVOKED_CHALLENGE = b'Bearer error="invalid_token", error_description="session revoked"'
WS_CLOSE_REVOKED = 4401  # application range (4000-4999): "unauthorized", like HTTP 401
WS_CLOSE_TRY_AGAIN = 1013  # RFC 6455 registry: try again later
WS_CLOSE_POLICY = 1008  # RFC 6455: policy violation (a session id without a tenant)


class RevocationView(Protocol):
    """What the middleware asks of a listener (RevocationListener provides it)."""

    @property
    def fail_closed(self) -> bool: ...
    def healthy(self) -> bool: ...
    def is_revoked(self, tenant: str, session_id: str) -> bool: ...


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def from_header(name: str) -> ValueGetter:
    """Read a value from a request header (case-insensitive); empty means none."""
    wanted = name.lower().encode("latin-1")

    def get(scope: Scope) -> str | None:
        value = _header(scope, wanted)
        if value is None:
            return None
        return value.decode("latin-1").strip() or None

    return get


def from_cookie(name: str) -> ValueGetter:
    """Read a value from a cookie of the ``Cookie`` header (RFC 6265 syntax)."""

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


def constant(value: str) -> ValueGetter:
    """Always ``value``: the tenant of a single-tenant service."""
    if not value:
        raise ValueError("constant() needs a non-empty value")
    return lambda scope: value


def first_of(*getters: ValueGetter) -> ValueGetter:
    """The first value any of ``getters`` finds (e.g. a header, then a cookie)."""

    def get(scope: Scope) -> str | None:
        for getter in getters:
            found = getter(scope)
            if found:
                return found
        return None

    return get


session_id_from_header = tenant_from_header = from_header
session_id_from_cookie = tenant_from_cookie = from_cookie


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
        get_tenant: TenantGetter,
        retry_after_s: float = 5.0,
        websocket_check_s: float = 0.5,
    ) -> None:
        if not websocket_check_s > 0:
            raise ValueError(f"websocket_check_s must be positive, got {websocket_check_s!r}")
        self.app = app
        self.listener = listener
        self.get_session_id = get_session_id
        self.get_tenant = get_tenant
        self.websocket_check_s = websocket_check_s
        self._retry_after = str(max(1, math.ceil(retry_after_s))).encode()

    def _verdict(self, tenant: str, session_id: str) -> int | None:
        """None when the session may be served, else the WebSocket close code."""
        listener = self.listener
        if listener.fail_closed and not listener.healthy():
            return WS_CLOSE_TRY_AGAIN
        if listener.is_revoked(tenant, session_id):
            return WS_CLOSE_REVOKED
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        session_id = self.get_session_id(scope) if kind in ("http", "websocket") else None
        if session_id is None:
            await self.app(scope, receive, send)
            return
        tenant = self.get_tenant(scope)
        if kind == "websocket":
            await self._websocket(scope, receive, send, tenant, session_id)
            return
        if tenant is None:
            body = {"error": "invalid_request", "error_description": "tenant missing"}
            await _respond(send, 400, body, [])
            return
        verdict = self._verdict(tenant, session_id)
        if verdict == WS_CLOSE_TRY_AGAIN:
            await _respond(
                send,
                503,
                {"error": "temporarily_unavailable", "error_description": "revocations unknown"},
                [(b"retry-after", self._retry_after)],
            )
        elif verdict == WS_CLOSE_REVOKED:
            await _respond(
                send,
                401,
                {"error": "invalid_token", "error_description": "session revoked"},
                [(b"www-authenticate", REVOKED_CHALLENGE)],
            )
        else:
            await self.app(scope, receive, send)

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, tenant: str | None, session_id: str
    ) -> None:
        verdict = WS_CLOSE_POLICY if tenant is None else self._verdict(tenant, session_id)
        if verdict is not None or tenant is None:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": verdict or WS_CLOSE_POLICY})
            return
        guard = _WebSocketGuard(receive, send)
        watcher = asyncio.create_task(self._watch(guard, tenant, session_id))
        try:
            await self.app(scope, guard.receive, guard.send)
        finally:
            watcher.cancel()

    async def _watch(self, guard: _WebSocketGuard, tenant: str, session_id: str) -> None:
        while True:
            await asyncio.sleep(self.websocket_check_s)
            verdict = self._verdict(tenant, session_id)
            if verdict is not None:
                await guard.close(verdict)
                return


class _WebSocketGuard:
    """The app's receive and send on a WebSocket the middleware may close under it: after
    ``close`` the app's pending and later receives get ``websocket.disconnect`` and its sends
    are dropped."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed = asyncio.Event()
        self._code = 1000

    async def close(self, code: int) -> None:
        if self._closed.is_set():
            return
        self._code = code
        self._closed.set()
        await self._send({"type": "websocket.close", "code": code})

    async def send(self, message: Message) -> None:
        if not self._closed.is_set():
            await self._send(message)

    async def receive(self) -> Message:
        if not self._closed.is_set():
            incoming = asyncio.ensure_future(self._receive())
            closed = asyncio.ensure_future(self._closed.wait())
            await asyncio.wait({incoming, closed}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if incoming.done():
                return incoming.result()
            incoming.cancel()
        return {"type": "websocket.disconnect", "code": self._code}
