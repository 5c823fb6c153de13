"""Server push of revocations to browsers: a hub keyed by (tenant, session) and an SSE endpoint.

    hub = PushHub(lookup=lambda tenant, sid: listener.revocation(tenant, sid))
    listener = RevocationListener.from_settings(settings, on_revocation=hub.on_revocation)
    app = Starlette(routes=[*browser_routes(hub, get_session_id, constant("acme")), ...])

A page includes ``/_sessionwarden/sessionwarden.js``; the script opens one EventSource per tab on
``/_sessionwarden/events``. The stream identifies its session the way the middleware does (a
cookie or header getter, never a session id in the query string) and:

* answers ``401`` without a session (the browser does not reconnect after a non-200 status);
* sends a ``revoked`` event (``{"reason": ..., "revocation_id": ...}``, id = the revocation id)
  the moment the listener applies a revocation of its session, or at once if the session is
  already revoked, then ends; a reconnect of a revoked session (it carries ``Last-Event-ID``) is
  answered ``204``, which stops the browser from reconnecting for good;
* otherwise stays open with heartbeat comments (proxies keep it; ``X-Accel-Buffering: no``),
  never a 503: a listener restart or an outage does not end the stream, and a restarted
  service is reconnected to by the browser after ``retry_ms``.

Mount these routes beside, not behind, ``RevocationMiddleware``: a 401/503 from the middleware
would stop the browser's stream without telling it why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from typing import Any, NamedTuple, Protocol

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from schemas.outputs import Revocation
from streams.clients.asgi import SessionIdGetter, TenantGetter

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

    def __init__(self, lookup: RevocationLookup | None = None, max_streams: int = 16) -> None:
        self.lookup = lookup
        self.max_streams = max_streams
        """Open streams per session at most (one per tab); more are refused with 429."""
        self._streams: dict[SessionKey, set[asyncio.Queue[Notice]]] = {}
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

    @contextlib.contextmanager
    def subscribe(self, key: SessionKey) -> Iterator[asyncio.Queue[Notice]]:
        """A queue that receives the session's revocations while the block runs (loop thread)."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Notice] = asyncio.Queue()
        self._streams.setdefault(key, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._streams.get(key)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._streams[key]


def _revoked_event(notice: Notice) -> ServerSentEvent:
    data = {"reason": notice.reason, "revocation_id": notice.revocation_id}
    return ServerSentEvent(orjson.dumps(data).decode(), event="revoked", id=notice.revocation_id)


async def _events(hub: PushHub, key: SessionKey, retry_ms: int) -> AsyncIterator[ServerSentEvent]:
    with hub.subscribe(key) as queue:
        yield ServerSentEvent(comment="subscribed", retry=retry_ms)
        # Looked up after subscribing: a revocation applied in between is in one or the other.
        notice = hub.revoked(key) or await queue.get()
        yield _revoked_event(notice)


def revocation_stream(
    hub: PushHub,
    get_session_id: SessionIdGetter,
    get_tenant: TenantGetter,
    *,
    ping_s: float = 15.0,
    retry_ms: int = 1000,
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of one tab's revocation stream (see the module docstring)."""

    async def endpoint(request: Request) -> Response:
        session_id, tenant = get_session_id(request.scope), get_tenant(request.scope)
        if not session_id or not tenant:
            return JSONResponse({"error": "login required"}, 401, {"cache-control": "no-store"})
        key = (tenant, session_id)
        if request.headers.get("last-event-id") and hub.revoked(key) is not None:
            return Response(status_code=204, headers={"cache-control": "no-store"})
        if hub.streams(key) >= hub.max_streams:
            return JSONResponse({"error": "too many streams"}, 429, {"retry-after": "30"})
        return EventSourceResponse(
            _events(hub, key, retry_ms), ping=ping_s, headers={"cache-control": "no-store"}
        )

    return endpoint


def script_source() -> bytes:
    """The browser script, shipped as package data."""
    return resources.files("streams.web").joinpath("static/sessionwarden.js").read_bytes()


def browser_routes(
    hub: PushHub, get_session_id: SessionIdGetter, get_tenant: TenantGetter, **options: Any
) -> list[BaseRoute]:
    """The stream and the script, to mount beside (not behind) the revocation middleware;
    ``options`` go to :func:`revocation_stream` (``ping_s``, ``retry_ms``)."""
    script = script_source()

    async def serve_script(request: Request) -> Response:
        return Response(
            script,
            media_type="text/javascript",
            headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"},
        )

    stream = revocation_stream(hub, get_session_id, get_tenant, **options)
    return [Route(STREAM_PATH, stream), Route(SCRIPT_PATH, serve_script)]
