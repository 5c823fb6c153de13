"""The dashboard's web app: Starlette, every route behind a token, live updates over SSE.

A browser authenticates once: ``POST /login`` with the token (the 401 page's form, filled in
from the URL's ``#token=...`` fragment, which never reaches the server or its logs) sets an
HttpOnly cookie holding a MAC of the token, not the token. Scripts may send
``Authorization: Bearer <token>`` instead. Everything else answers 401 without one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sessionwarden.ops.bodies import BodyRefused, read_body
from sessionwarden.sdk.asgi import (
    AmbiguousIdentity,
    ASGIApp,
    Receive,
    Scope,
    Send,
    session_id_from_cookie,
)
from sessionwarden.web.dashboard.actions import RevokeActions
from sessionwarden.web.dashboard.view import DashboardState

COOKIE = "sessionwarden_dashboard"
MAX_LOGIN_BODY = 2048
STATIC = {
    "/static/dashboard.js": "text/javascript",
    "/static/dashboard.css": "text/css",
}


def _static(name: str) -> bytes:
    return resources.files("sessionwarden.web.dashboard").joinpath(f"static/{name}").read_bytes()


class TokenGate:
    """ASGI middleware: only requests with the token (bearer header or login cookie) pass;
    the rest get 401 (a login form for browsers). ``POST /login`` exchanges the token for the
    cookie."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if len(token) < 16:
            raise ValueError("the dashboard token must be at least 16 characters")
        self.app = app
        self._token = token.encode()
        self._cookie = hmac.new(self._token, b"dashboard-cookie", hashlib.sha256).hexdigest()
        self._get_cookie = session_id_from_cookie(COOKIE)
        self._login_page = _static("dashboard-login.html")

    def _authorized(self, request: Request) -> bool:
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return hmac.compare_digest(bearer[7:].strip().encode(), self._token)
        try:
            cookie = self._get_cookie(request.scope) or ""
        except AmbiguousIdentity:  # two login cookies, or a malformed one: not authorized
            return False
        return hmac.compare_digest(cookie.encode(), self._cookie.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if scope["path"] == "/login" and request.method == "POST":
            response = await self._login(request)
        elif self._authorized(request):
            await self.app(scope, receive, send)
            return
        else:
            response = self._refuse(request)
        await response(scope, receive, send)

    async def _login(self, request: Request) -> Response:
        try:
            body = await read_body(request, MAX_LOGIN_BODY)
        except BodyRefused:
            return self._refuse(request)
        token = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if not hmac.compare_digest(token.encode(), self._token):
            return self._refuse(request)
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, self._cookie, httponly=True, samesite="strict")
        return response

    def _refuse(self, request: Request) -> Response:
        headers = {"www-authenticate": 'Bearer realm="sessionwarden-dashboard"'}
        headers["cache-control"] = "no-store"
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(self._login_page, 401, headers)
        return JSONResponse({"error": "unauthorized"}, 401, headers)


class Pusher:
    """Wakes the SSE streams (on the event loop) when the feed thread changed the state."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: set[asyncio.Event] = set()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        """An event set after every change while the block runs (event-loop thread)."""
        self._loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        self._streams.add(changed)
        try:
            yield changed
        finally:
            self._streams.discard(changed)

    def _wake(self) -> None:
        for changed in self._streams:
            changed.set()

    def notify(self) -> None:
        """From any thread."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._wake)


def dashboard_app(
    state: DashboardState,
    lock: threading.Lock,
    token: str,
    *,
    pusher: Pusher | None = None,
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]] | None = None,
    refresh_s: float = 5.0,
    clock: Callable[[], float] = time.time,
    actions: RevokeActions | None = None,
) -> ASGIApp:
    """The dashboard app over ``state`` (guarded by ``lock``); ``pusher.notify()`` after each
    change pushes a new snapshot to every open page within milliseconds."""
    pusher = pusher or Pusher()
    page = _static("dashboard.html")

    def snapshot() -> dict[str, Any]:
        with lock:
            return state.snapshot(clock())

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"cache-control": "no-store"})

    async def api_snapshot(request: Request) -> Response:
        return JSONResponse(snapshot(), headers={"cache-control": "no-store"})

    async def updates() -> AsyncIterator[ServerSentEvent]:
        with pusher.subscribe() as changed:
            while True:
                changed.clear()
                yield ServerSentEvent(orjson.dumps(snapshot()).decode(), event="snapshot")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), refresh_s)  # windows roll meanwhile

    async def events(request: Request) -> Response:
        return EventSourceResponse(updates(), ping=15, headers={"cache-control": "no-store"})

    def static(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
        body = _static(name.rsplit("/", 1)[-1])

        async def serve(request: Request) -> Response:
            return Response(body, media_type=media_type, headers={"cache-control": "no-cache"})

        return serve

    async def no_actions(request: Request) -> Response:
        return JSONResponse({"enabled": False}, headers={"cache-control": "no-store"})

    routes = [
        Route("/", index),
        Route("/api/snapshot", api_snapshot),
        Route("/events", events),
        Route("/api/actions", actions.describe if actions else no_actions),
        *(Route(path, static(path, kind)) for path, kind in STATIC.items()),
    ]
    if actions is not None:  # off unless dashboard_operator names the commands' operator
        routes.append(Route("/api/revoke", actions.revoke, methods=["POST"]))
    return TokenGate(Starlette(routes=routes, lifespan=lifespan), token)
