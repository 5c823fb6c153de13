"""Server push of revocations to browsers: a hub keyed by (tenant, session) and an SSE endpoint.

    hub = PushHub(lookup=lambda tenant, sid: listener.revocation(tenant, sid))
    listener = RevocationListener.from_settings(settings, on_revocation=hub.on_revocation)
    routes = browser_routes(hub, get_session_id, constant("acme"), authenticate=sessions.known)
    app = Starlette(routes=[*routes, ...])

A page includes ``/_sessionwarden/sessionwarden.js``; the script opens one EventSource per tab on
``/_sessionwarden/events``. The stream identifies its session the way the middleware does (a
cookie or header getter, never a session id in the query string) and:

* answers ``401`` without a session, or with one the service does not know (``authenticate``,
  the service's own check that it issued the session, says no): the browser does not
  reconnect after a non-200 status; ``400`` when the session is named ambiguously (see
  sessionwarden.sdk.asgi);
* holds at most ``max_streams`` streams per session, ``max_per_owner`` per user (when the
  service says whose session it is: ``owner``) and ``max_total`` per process (by default half
  the process's file descriptor limit), checked and taken in one step on the event loop: more
  are answered ``429`` (per session or user) or ``503`` (per process), with ``Retry-After``.
  These are capacity refusals, not revocations: the browser script keeps the page and tries
  again after ``Retry-After`` (the API still refuses a revoked session by itself);
* first sends a ``session`` event (``{"session": <fingerprint>}``): a hash of the tenant and
  session id (:func:`session_fingerprint`; never the id itself), by which the page's tabs tell
  their sessions apart;
* sends a ``revoked`` event (``{"reason", "revocation_id", "session"}``, id = the revocation
  id) the moment the listener applies a revocation of its session, or at once if the session
  is already revoked, then ends; a reconnect of a revoked session (it carries
  ``Last-Event-ID``) is answered ``204``, which stops the browser from reconnecting for good;
* otherwise stays open with heartbeat comments (proxies keep it; ``X-Accel-Buffering: no``),
  never a 503: a listener restart or an outage does not end the stream, and a restarted
  service is reconnected to by the browser after ``retry_ms``.

Mount these routes beside, not behind, ``RevocationMiddleware``: a 401/503 from the middleware
would stop the browser's stream without telling it why.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from typing import Any, NamedTuple, Protocol

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sessionwarden.contracts.outputs import Revocation
from sessionwarden.errors import SessionwardenError
from sessionwarden.sdk.asgi import (
    AmbiguousIdentity,
    Receive,
    Scope,
    Send,
    SessionIdGetter,
    TenantGetter,
    default_max_connections,
)

log = logging.getLogger(__name__)

PREFIX = "/_sessionwarden"
STREAM_PATH = f"{PREFIX}/events"
SCRIPT_PATH = f"{PREFIX}/sessionwarden.js"

SessionKey = tuple[str, str]
"""(tenant, session_id): a session id is only unique within its tenant."""


class RevokedLike(Protocol):
    """What the stream needs of a known revocation (RevokedEntry provides it)."""

    @property
    def revocation_id(self) -> str: ...
    @property
    def reason(self) -> str: ...


RevocationLookup = Callable[[str, str], "RevokedLike | None"]
"""(tenant, session_id) -> the session's revocation if the listener knows of one."""

Authenticator = Callable[[str, str], "bool | Awaitable[bool]"]
"""(tenant, session_id) -> whether the service issued this session (sync or async)."""

OwnerOf = Callable[[str, str], "str | None"]
"""(tenant, session_id) -> the user the session belongs to, if the service knows (streams are
capped per user too: one user signing in many times cannot take every stream)."""


class StreamLimit(SessionwardenError):
    """No stream for this request: too many for its session (429) or the process (503)."""

    def __init__(self, status: int, retry_after_s: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


def default_max_total() -> int:
    """Half the process's soft file descriptor limit (each stream holds one), at least 16."""
    return default_max_connections()


class Notice(NamedTuple):
    tenant: str
    session_id: str
    revocation_id: str
    reason: str


class PushHub:
    """Fans revocations out to the open browser streams of their (tenant, session).

    ``on_revocation`` / ``publish`` may be called from any thread (the listener's); delivery
    happens on the event loop that serves the streams. Sessions nobody watches cost nothing.
    """

    def __init__(
        self,
        lookup: RevocationLookup | None = None,
        max_streams: int = 16,
        max_total: int | None = None,
        max_per_owner: int = 32,
    ) -> None:
        self.lookup = lookup
        self.max_streams = max_streams
        """Open streams per session at most (one per tab); more are refused with 429."""
        self.max_total = default_max_total() if max_total is None else max_total
        """Open streams in this process at most; more are refused with 503."""
        self.max_per_owner = max_per_owner
        """Open streams per user (tenant, owner) at most, over all of the user's sessions, when
        the stream is told the owner; more are refused with 429."""
        self._streams: dict[SessionKey, set[asyncio.Queue[Notice]]] = {}
        self._owners: dict[tuple[str, str], int] = {}
        self._owner_of: dict[asyncio.Queue[Notice], tuple[str, str]] = {}
        self._total = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def on_revocation(self, record: Revocation) -> None:
        """A listener callback: ``RevocationListener(..., on_revocation=hub.on_revocation)``."""
        self.publish(
            Notice(record.tenant, record.session_id, str(record.revocation_id), record.reason)
        )

    def publish(self, notice: Notice) -> None:
        """Deliver ``notice`` to the streams of its session (any thread)."""
        loop = self._loop
        if loop is None or (notice.tenant, notice.session_id) not in self._streams:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            loop.call_soon_threadsafe(self._deliver, notice)

    def _deliver(self, notice: Notice) -> None:
        for queue in self._streams.get((notice.tenant, notice.session_id), ()):
            queue.put_nowait(notice)

    def revoked(self, key: SessionKey) -> Notice | None:
        """The session's revocation as the listener knows it, if any."""
        entry = self.lookup(*key) if self.lookup is not None else None
        if entry is None:
            return None
        return Notice(key[0], key[1], entry.revocation_id, entry.reason)

    def streams(self, key: SessionKey) -> int:
        return len(self._streams.get(key, ()))

    def total_streams(self) -> int:
        return self._total

    def owner_streams(self, tenant: str, owner: str) -> int:
        return self._owners.get((tenant, owner), 0)

    def open(self, key: SessionKey, owner: str | None = None) -> asyncio.Queue[Notice]:
        """Take a stream slot for the session (of the user ``owner``, if known) and return its
        queue, or raise StreamLimit; the check and the taking are one step (loop thread,
        nothing awaited in between), so concurrent connects cannot all pass the check. Give it
        back with :meth:`close`."""
        if self._total >= self.max_total:
            raise StreamLimit(503, 10, "too many streams in this service")
        queues = self._streams.get(key)
        if queues is not None and len(queues) >= self.max_streams:
            raise StreamLimit(429, 30, "too many streams for this session")
        who = (key[0], owner) if owner is not None else None
        if who is not None and self._owners.get(who, 0) >= self.max_per_owner:
            raise StreamLimit(429, 30, "too many streams for this user")
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Notice] = asyncio.Queue()
        self._streams.setdefault(key, set()).add(queue)
        self._total += 1
        if who is not None:
            self._owners[who] = self._owners.get(who, 0) + 1
            self._owner_of[queue] = who
        return queue

    def close(self, key: SessionKey, queue: asyncio.Queue[Notice]) -> None:
        """Give back the slot :meth:`open` took (loop thread; idempotent)."""
        queues = self._streams.get(key)
        if queues is None or queue not in queues:
            return
        queues.discard(queue)
        self._total -= 1
        if not queues:
            del self._streams[key]
        who = self._owner_of.pop(queue, None)
        if who is not None:
            left = self._owners[who] - 1
            if left:
                self._owners[who] = left
            else:
                del self._owners[who]

    @contextlib.contextmanager
    def subscribe(self, key: SessionKey) -> Iterator[asyncio.Queue[Notice]]:
        """A queue that receives the session's revocations while the block runs (loop thread);
        raises StreamLimit over the caps."""
        queue = self.open(key)
        try:
            yield queue
        finally:
            self.close(key, queue)


def session_fingerprint(tenant: str, session_id: str) -> str:
    """What the page's tabs compare to tell their sessions apart: 32 hex digits of SHA-256 over
    a domain label, the tenant (length-prefixed) and the session id. Not the id, and no use
    to anyone who does not already hold it; a BroadcastChannel message may carry it."""
    material = f"sessionwarden-tab\x00{len(tenant)}:{tenant}\x1f{session_id}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _revoked_event(notice: Notice) -> ServerSentEvent:
    data = {
        "reason": notice.reason,
        "revocation_id": notice.revocation_id,
        "session": session_fingerprint(notice.tenant, notice.session_id),
    }
    return ServerSentEvent(orjson.dumps(data).decode(), event="revoked", id=notice.revocation_id)


async def _events(
    hub: PushHub, key: SessionKey, queue: asyncio.Queue[Notice], retry_ms: int
) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(comment="subscribed", retry=retry_ms)
    session = orjson.dumps({"session": session_fingerprint(*key)}).decode()
    yield ServerSentEvent(session, event="session")
    # Looked up after subscribing: a revocation applied in between is in one or the other.
    notice = hub.revoked(key) or await queue.get()
    yield _revoked_event(notice)


class _Stream(EventSourceResponse):
    """The SSE response of one slot; the slot is given back however the response ends."""

    def __init__(
        self, hub: PushHub, key: SessionKey, queue: asyncio.Queue[Notice], retry_ms: int,
        ping_s: float,
    ) -> None:  # fmt: skip
        super().__init__(
            _events(hub, key, queue, retry_ms), ping=ping_s, headers={"cache-control": "no-store"}
        )
        self._slot = (hub, key, queue)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            hub, key, queue = self._slot
            hub.close(key, queue)


def _refusal(status: int, error: str, **headers: str) -> Response:
    return JSONResponse({"error": error}, status, {"cache-control": "no-store", **headers})


def revocation_stream(
    hub: PushHub,
    get_session_id: SessionIdGetter,
    get_tenant: TenantGetter,
    *,
    authenticate: Authenticator,
    owner: OwnerOf | None = None,
    ping_s: float = 15.0,
    retry_ms: int = 1000,
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of one tab's revocation stream (see the module docstring).
    ``authenticate(tenant, session_id)`` is the service's check that it issued the session;
    ``owner(tenant, session_id)``, the user it belongs to (streams are capped per user too)."""

    async def endpoint(request: Request) -> Response:
        try:
            session_id, tenant = get_session_id(request.scope), get_tenant(request.scope)
        except AmbiguousIdentity:
            return _refusal(400, "ambiguous session")
        if not session_id or not tenant:
            return _refusal(401, "login required")
        key = (tenant, session_id)
        if request.headers.get("last-event-id") and hub.revoked(key) is not None:
            return Response(status_code=204, headers={"cache-control": "no-store"})
        known = authenticate(tenant, session_id)
        if inspect.isawaitable(known):
            known = await known
        if not known:
            return _refusal(401, "login required")
        who = owner(tenant, session_id) if owner is not None else None
        try:
            queue = hub.open(key, who)  # after the last await: checked and taken at once
        except StreamLimit as exc:
            return _refusal(exc.status, str(exc), **{"retry-after": str(exc.retry_after_s)})
        return _Stream(hub, key, queue, retry_ms, ping_s)

    return endpoint


def script_source() -> bytes:
    """The browser script, shipped as package data."""
    return resources.files("sessionwarden.sdk").joinpath("static/sessionwarden.js").read_bytes()


def browser_routes(
    hub: PushHub,
    get_session_id: SessionIdGetter,
    get_tenant: TenantGetter,
    *,
    authenticate: Authenticator,
    **options: Any,
) -> list[BaseRoute]:
    """The stream and the script, to mount beside (not behind) the revocation middleware;
    ``authenticate(tenant, session_id)`` says whether the service issued the session (streams
    of any other are refused); ``options`` go to :func:`revocation_stream` (``owner``,
    ``ping_s``, ``retry_ms``)."""
    script = script_source()

    async def serve_script(request: Request) -> Response:
        return Response(
            script,
            media_type="text/javascript",
            headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"},
        )

    stream = revocation_stream(
        hub, get_session_id, get_tenant, authenticate=authenticate, **options
    )
    return [Route(STREAM_PATH, stream), Route(SCRIPT_PATH, serve_script)]
