"""ASGI middleware that refuses requests of revoked sessions; no web framework needed.

    app = RevocationMiddleware(
        app, listener, session_id_from_header("x-session-id"), tenant_from_header("x-tenant")
    )

A session is (tenant, session_id): the middleware takes both from the request (a single-tenant
service passes ``constant("its-tenant")`` as the tenant getter) and hands the identity it
checked to the app as ``scope["sessionwarden"]`` (a :class:`SessionIdentity`, or ``None``
without a session; Starlette: ``request.state.sessionwarden``). The app must use that, never
read the cookie or header again its own way.

* a request that names its session ambiguously (twice, a header and a cookie that disagree, a
  cookie name in another case, whitespace, control characters, quotes with escapes, percent
  signs, empty or over 256 characters) gets ``400`` ``invalid_request`` (a WebSocket: close
  1008): frameworks read such requests differently, so the session checked might not be the
  one served;
* a revoked session gets ``401`` with
  ``WWW-Authenticate: Bearer error="invalid_token", error_description="session revoked"``
  (RFC 6750 section 3): the client must authenticate again;
* while a fail-closed listener is unhealthy, requests that carry a session get ``503`` with
  ``Retry-After``: the session is not known to be revoked, the service cannot vouch for it, and
  a 401 would make every client throw its credentials away because of our outage;
* a request with a session id but no tenant gets ``400`` (a WebSocket: close 1008): it cannot
  be checked;
* WebSocket handshakes are checked the same way (a refused handshake is closed before it is
  accepted, which servers answer with HTTP 403); a live WebSocket is closed with code 4401
  (revoked) as soon as the listener applies its session's revocation (its revocation
  callback has it checked), or 1013 (try again later) once a fail-closed listener is
  unhealthy, which one poll per event loop every ``websocket_check_s`` notices (also a
  backstop); WebSockets beyond ``max_websockets_per_session`` per session or
  ``max_websockets`` per process are closed before they are accepted with 1013;
* requests without a session id, and lifespan scopes, pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import resource
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple, Protocol

import orjson

from sessionwarden.errors import SessionwardenError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ValueGetter = Callable[[Scope], "str | None"]
SessionIdGetter = ValueGetter
TenantGetter = ValueGetter

REVOKED_CHALLENGE = b'Bearer error="invalid_token", error_description="session revoked"'
AMBIGUOUS_CHALLENGE = b'Bearer error="invalid_request", error_description="ambiguous session"'
WS_CLOSE_REVOKED = 4401  # application range (4000-4999): "unauthorized", like HTTP 401
WS_CLOSE_TRY_AGAIN = 1013  # RFC 6455 registry: try again later
WS_CLOSE_POLICY = 1008  # RFC 6455: policy violation (a session id without a tenant)


class RevocationView(Protocol):
    """What the middleware asks of a listener (RevocationListener provides it)."""

    @property
    def fail_closed(self) -> bool: ...
    def healthy(self) -> bool: ...
    def is_revoked(self, tenant: str, session_id: str) -> bool: ...


MAX_VALUE_CHARS = 256
"""Longest session id (or tenant) a getter accepts: the schema's bound on a session id."""

# RFC 6265 cookie-octet without "%": visible ASCII but for space, DQUOTE, comma, semicolon,
# backslash and percent. No reader can split, unquote, unescape or percent-decode such a value
# into anything but itself.
_PLAIN = re.compile(r"[\x21\x23\x24\x26-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+")


class AmbiguousIdentity(SessionwardenError):
    """The request names its session (or tenant) in a way two readers could take differently:
    twice, two ways that disagree, or in a form some parsers rewrite. The middleware refuses it
    with 400 (a WebSocket: close 1008); the message never carries the value."""


class SessionIdentity(NamedTuple):
    """The session the middleware checked; the app finds it in ``scope["sessionwarden"]``
    (Starlette: ``request.state.sessionwarden``), ``None`` for a request without a session."""

    tenant: str
    session_id: str


SCOPE_KEY = "sessionwarden"


def checked_session(scope: Scope) -> SessionIdentity | None:
    """The identity the middleware checked for this request; raises ``KeyError`` if the app is
    not behind a :class:`RevocationMiddleware` (read the request yourself, and you reopen the
    gap the middleware closes)."""
    found: SessionIdentity | None = scope[SCOPE_KEY]
    return found


def _headers(scope: Scope, name: bytes) -> list[bytes]:
    """Every value of the header ``name`` (lower case), counting a name spelled with ``_`` for
    ``-`` as the same header: WSGI/CGI-style stacks (Django's ``META``) map both to one key."""
    wanted = name.replace(b"_", b"-")
    return [
        bytes(value)
        for key, value in scope.get("headers", ())
        if bytes(key).lower().replace(b"_", b"-") == wanted
    ]


def _plain(value: str, what: str) -> str:
    if not value:
        raise AmbiguousIdentity(f"{what} is empty")
    if len(value) > MAX_VALUE_CHARS:
        raise AmbiguousIdentity(f"{what} is longer than {MAX_VALUE_CHARS} characters")
    if _PLAIN.fullmatch(value) is None:
        raise AmbiguousIdentity(
            f"{what} has whitespace, a control or non-ASCII character, a quote, comma, "
            "semicolon, backslash or percent sign"
        )
    return value


def from_header(name: str) -> ValueGetter:
    """Read a value from a request header (case-insensitive name). Sent twice, empty, with
    surrounding whitespace, or with any character outside the plain set (see
    :data:`MAX_VALUE_CHARS` and docs/CLIENTS.md) raises :class:`AmbiguousIdentity`."""
    wanted = name.lower().encode("latin-1")
    what = f"header {name}"

    def get(scope: Scope) -> str | None:
        values = _headers(scope, wanted)
        if not values:
            return None
        if len(values) > 1:
            raise AmbiguousIdentity(f"{what} sent {len(values)} times")
        return _plain(values[0].decode("latin-1"), what)

    return get


def from_cookie(name: str) -> ValueGetter:
    """Read a value from a cookie of the ``Cookie`` header(s) (RFC 6265 syntax). Raises
    :class:`AmbiguousIdentity` unless the name (compared case-insensitively, and wherever a
    lenient parser would see a cookie start: after ``;``, ``,`` or whitespace) occurs exactly
    once, as ``name=value`` with a plain value (optionally in plain double quotes)."""
    if not name or _PLAIN.fullmatch(name) is None or "=" in name:
        raise ValueError(f"not a cookie name: {name!r}")
    mention = re.compile(rf"(?:^|[\s;,]){re.escape(name)}\s*=", re.IGNORECASE)
    what = f"cookie {name}"

    def get(scope: Scope) -> str | None:
        lines = _headers(scope, b"cookie")
        if not lines:
            return None
        text = "; ".join(line.decode("latin-1") for line in lines)
        mentions = len(mention.findall(text))
        if mentions == 0:
            return None
        exact = []
        for pair in text.split(";"):
            key, sep, value = pair.strip(" \t").partition("=")
            if sep and key.rstrip(" \t") == name:
                exact.append(value)
        if mentions != 1 or len(exact) != 1:
            raise AmbiguousIdentity(f"{what} is named more than once or in another case")
        value = exact[0]
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return _plain(value, what)

    return get


def constant(value: str) -> ValueGetter:
    """Always ``value``: the tenant of a single-tenant service."""
    if not value:
        raise ValueError("constant() needs a non-empty value")
    return lambda scope: value


def one_of(*getters: ValueGetter) -> ValueGetter:
    """The value the ``getters`` find (e.g. a header and a cookie); if two of them find
    different values, :class:`AmbiguousIdentity`: a reader preferring the other would check a
    different session than the middleware did."""

    def get(scope: Scope) -> str | None:
        found = {value for value in (getter(scope) for getter in getters) if value is not None}
        if len(found) > 1:
            raise AmbiguousIdentity("the session is named differently in two places")
        return found.pop() if found else None

    return get


first_of = one_of
"""The former name of :func:`one_of`. It once took the first value found, which let a made-up
header vouch for a revoked cookie; it now refuses values that disagree."""


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


class RevokedRecord(Protocol):
    """What the middleware reads of a revocation (sessionwarden.contracts.outputs.Revocation
    provides it)."""

    @property
    def tenant(self) -> str: ...
    @property
    def session_id(self) -> str: ...


def default_max_connections() -> int:
    """Half the process's soft file descriptor limit (each connection holds one), at least 16;
    10,000 without a limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, soft // 2)


class _Socket(NamedTuple):
    loop: asyncio.AbstractEventLoop
    key: tuple[str, str]
    guard: _WebSocketGuard


class RevocationMiddleware:
    """Wraps an ASGI app; see the module docstring for the responses.

    If the listener offers ``add_revocation_callback`` (RevocationListener does), the middleware
    subscribes ``on_revocation`` to it, so a live WebSocket is closed as soon as the listener
    applies its session's revocation; otherwise (or in addition) wire ``on_revocation`` to the
    listener yourself. One poll per event loop, every ``websocket_check_s``, checks every open
    socket: a backstop, and what closes sockets when a fail-closed listener turns unhealthy.

    WebSockets are capped: at most ``max_websockets_per_session`` per session and
    ``max_websockets`` per process (by default half the file descriptor limit), checked and
    taken in one step before the handshake; more are closed before they are accepted with
    1013 (try again later).
    """

    def __init__(
        self,
        app: ASGIApp,
        listener: RevocationView,
        get_session_id: SessionIdGetter,
        get_tenant: TenantGetter,
        retry_after_s: float = 5.0,
        websocket_check_s: float = 0.5,
        max_websockets_per_session: int = 16,
        max_websockets: int | None = None,
    ) -> None:
        if not websocket_check_s > 0:
            raise ValueError(f"websocket_check_s must be positive, got {websocket_check_s!r}")
        if max_websockets_per_session < 1 or (max_websockets is not None and max_websockets < 1):
            raise ValueError("the WebSocket caps must be at least 1")
        self.app = app
        self.listener = listener
        self.get_session_id = get_session_id
        self.get_tenant = get_tenant
        self.websocket_check_s = websocket_check_s
        self.max_websockets_per_session = max_websockets_per_session
        self.max_websockets = (
            default_max_connections() if max_websockets is None else max_websockets
        )
        self._retry_after = str(max(1, math.ceil(retry_after_s))).encode()
        # (tenant, session_id) -> its open sockets; read on the listener thread, changed on the
        # event loops, so every access holds the lock (never across an await).
        self._sockets: dict[tuple[str, str], set[_Socket]] = {}
        self._total = 0
        self._polls: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        subscribe = getattr(listener, "add_revocation_callback", None)
        if callable(subscribe):
            subscribe(self.on_revocation)

    def websockets(self, tenant: str, session_id: str) -> int:
        with self._lock:
            return len(self._sockets.get((tenant, session_id), ()))

    def total_websockets(self) -> int:
        return self._total

    def on_revocation(self, record: RevokedRecord) -> None:
        """Check the sockets of the record's session (any thread; never blocks on a loop)."""
        with self._lock:
            sockets = tuple(self._sockets.get((record.tenant, record.session_id), ()))
        for socket in sockets:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                socket.loop.call_soon_threadsafe(self._check, socket)

    def _verdict(self, tenant: str, session_id: str) -> int | None:
        """None when the session may be served, else the WebSocket close code."""
        listener = self.listener
        if listener.fail_closed and not listener.healthy():
            return WS_CLOSE_TRY_AGAIN
        if listener.is_revoked(tenant, session_id):
            return WS_CLOSE_REVOKED
        return None

    def _identify(self, scope: Scope) -> tuple[str | None, str | None]:
        """(tenant, session_id) as the getters read them; AmbiguousIdentity propagates."""
        session_id = self.get_session_id(scope)
        if session_id is None:
            return None, None
        return self.get_tenant(scope), session_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            tenant, session_id = self._identify(scope)
        except AmbiguousIdentity as exc:
            await self._refuse_ambiguous(kind, receive, send, str(exc))
            return
        identity = None
        if session_id is not None and tenant is not None:
            identity = SessionIdentity(tenant, session_id)
        scope[SCOPE_KEY] = identity
        scope.setdefault("state", {})[SCOPE_KEY] = identity
        if session_id is None:
            await self.app(scope, receive, send)
            return
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

    async def _refuse_ambiguous(self, kind: str, receive: Receive, send: Send, why: str) -> None:
        if kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": WS_CLOSE_POLICY})
            return
        body = {"error": "invalid_request", "error_description": f"ambiguous session: {why}"}
        await _respond(send, 400, body, [(b"www-authenticate", AMBIGUOUS_CHALLENGE)])

    def _take(self, socket: _Socket) -> bool:
        """Register ``socket`` if the caps allow (one step, under the lock), and make sure its
        loop's poll runs."""
        with self._lock:
            sockets = self._sockets.get(socket.key, set())
            if (
                self._total >= self.max_websockets
                or len(sockets) >= self.max_websockets_per_session
            ):
                return False
            sockets.add(socket)
            self._sockets[socket.key] = sockets
            self._total += 1
            if socket.loop not in self._polls:
                self._polls[socket.loop] = socket.loop.create_task(self._poll(socket.loop))
            return True

    def _give_back(self, socket: _Socket) -> None:
        with self._lock:
            sockets = self._sockets.get(socket.key)
            if sockets is None or socket not in sockets:
                return
            sockets.discard(socket)
            self._total -= 1
            if not sockets:
                del self._sockets[socket.key]

    def _check(self, socket: _Socket) -> None:
        """Close ``socket`` (on its loop) if its session may no longer be served."""
        with self._lock:
            if socket not in self._sockets.get(socket.key, ()):
                return
        verdict = self._verdict(*socket.key)
        if verdict is not None and not socket.guard.closed:
            task = socket.loop.create_task(socket.guard.close(verdict))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every ``websocket_check_s``, check every socket of this loop (staleness,
        fail-closed, and a backstop for a listener without callbacks); ends with the last."""
        try:
            while True:
                await asyncio.sleep(self.websocket_check_s)
                with self._lock:
                    mine = [s for group in self._sockets.values() for s in group if s.loop is loop]
                    if not mine:
                        return
                for socket in mine:
                    self._check(socket)
        finally:
            with self._lock:
                if self._polls.get(loop) is asyncio.current_task():
                    del self._polls[loop]

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, tenant: str | None, session_id: str
    ) -> None:
        if tenant is None:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": WS_CLOSE_POLICY})
            return
        guard = _WebSocketGuard(receive, send)
        socket = _Socket(asyncio.get_running_loop(), (tenant, session_id), guard)
        # Registered before the handshake's verdict: a revocation in between is checked again.
        taken = self._take(socket)
        verdict = self._verdict(tenant, session_id) if taken else WS_CLOSE_TRY_AGAIN
        if verdict is not None:
            self._give_back(socket)
            await receive()  # websocket.connect
            await guard.close(verdict)
            return
        try:
            await self.app(scope, guard.receive, guard.send)
        finally:
            guard.closed = True  # the app is done: nothing may be sent for it any more
            self._give_back(socket)


class _WebSocketGuard:
    """The app's receive and send on a WebSocket the middleware may close under it: after
    ``close`` the app's pending and later receives get ``websocket.disconnect`` and its sends
    are dropped."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._code = 1000
        self.closed = False
        """True once a close was sent (by the middleware or the app), or the app is done."""

    async def close(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        self._code = code
        self._closed.set_result(None)
        await self._send({"type": "websocket.close", "code": code})

    async def send(self, message: Message) -> None:
        if not self.closed:
            if message.get("type") == "websocket.close":
                self.closed = True
            await self._send(message)

    async def receive(self) -> Message:
        if not self._closed.done():
            incoming = asyncio.ensure_future(self._receive())
            either: set[asyncio.Future[Any]] = {incoming, self._closed}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if incoming.done():
                return incoming.result()
            incoming.cancel()
        return {"type": "websocket.disconnect", "code": self._code}
