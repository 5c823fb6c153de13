"""The ASGI middleware against a stub listener: status codes, headers, pass-through."""

from __future__ import annotations

import asyncio
import threading
import time
from http.cookies import SimpleCookie
from typing import Any

import pytest

from sessionwarden.sdk.asgi import (
    AmbiguousIdentity,
    RevocationMiddleware,
    Scope,
    SessionIdentity,
    constant,
    first_of,
    one_of,
    session_id_from_cookie,
    session_id_from_header,
    tenant_from_header,
)
from sessionwarden.sdk.listener import RevocationListener
from tests.unit.sdk.fakes import T0, TOPIC, Clock, FakeConsumer, wire
from tests.unit.sdk.fakes import revocation as fake_revocation

CHALLENGE = 'Bearer error="invalid_token", error_description="session revoked"'


TENANT = "acme"


class StubListener:
    """Revoked sessions as (tenant, session_id) pairs; bare ids are in TENANT."""

    def __init__(
        self,
        revoked: set[str] | set[tuple[str, str]] | None = None,
        healthy: bool = True,
        fail_closed: bool = False,
    ) -> None:
        self.revoked = {(TENANT, r) if isinstance(r, str) else r for r in revoked or ()}
        self._healthy = healthy
        self.fail_closed = fail_closed

    def healthy(self) -> bool:
        return self._healthy

    def is_revoked(self, tenant: str, session_id: str) -> bool:
        if self.fail_closed and not self._healthy:
            return True
        return (tenant, session_id) in self.revoked


class Recorder:
    """The wrapped app: answers 200 and remembers that it was called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


def http_scope(*headers: tuple[bytes, bytes], kind: str = "http") -> Scope:
    return {"type": kind, "path": "/", "headers": list(headers)}


def run(
    listener: StubListener, scope: Scope, getter: Any = None, tenant: Any = None
) -> tuple[Recorder, list[dict[str, Any]]]:
    app = Recorder()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = RevocationMiddleware(
        app,
        listener,
        getter or session_id_from_header("X-Session-Id"),
        tenant or constant(TENANT),
        retry_after_s=2.5,
    )
    asyncio.run(middleware(scope, receive, send))
    return app, sent


def headers_of(sent: list[dict[str, Any]]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in sent[0]["headers"]}


def test_a_revoked_session_gets_401_with_the_bearer_invalid_token_challenge() -> None:
    """RFC 6750: invalid_token tells the client to authenticate again."""
    app, sent = run(StubListener({"s-1"}), http_scope((b"x-session-id", b"s-1")))
    assert [] == app.calls
    assert 401 == sent[0]["status"]
    assert CHALLENGE == headers_of(sent)["www-authenticate"]
    assert b'{"error":"invalid_token","error_description":"session revoked"}' == sent[1]["body"]


def test_a_live_session_reaches_the_app() -> None:
    """Only revoked sessions are stopped."""
    app, sent = run(StubListener({"s-1"}), http_scope((b"x-session-id", b"s-2")))
    assert (["http"], 200) == (app.calls, sent[0]["status"])


def test_fail_closed_and_unhealthy_answers_503_with_retry_after() -> None:
    """An outage of ours must not make every client discard its credentials (as 401 would)."""
    listener = StubListener(healthy=False, fail_closed=True)
    app, sent = run(listener, http_scope((b"x-session-id", b"s-1")))
    assert ([], 503) == (app.calls, sent[0]["status"])
    assert "3" == headers_of(sent)["retry-after"]


def test_fail_open_and_unhealthy_still_serves_sessions_not_known_revoked() -> None:
    """Fail-open keeps the service up on the revocations it already knows."""
    listener = StubListener({"s-1"}, healthy=False)
    _, live = run(listener, http_scope((b"x-session-id", b"s-2")))
    _, revoked = run(listener, http_scope((b"x-session-id", b"s-1")))
    assert (200, 401) == (live[0]["status"], revoked[0]["status"])


def test_requests_without_a_session_pass_through_even_when_fail_closed() -> None:
    """Unauthenticated requests are the app's business (login pages, health checks)."""
    app, sent = run(StubListener(healthy=False, fail_closed=True), http_scope())
    assert (["http"], 200) == (app.calls, sent[0]["status"])


def test_lifespan_scopes_pass_through() -> None:
    """The middleware must not break server start-up."""
    app, _ = run(StubListener({"s-1"}), http_scope((b"x-session-id", b"s-1"), kind="lifespan"))
    assert ["lifespan"] == app.calls


def test_the_tenant_from_the_request_picks_the_session() -> None:
    """Same session id, two tenants: only the revoked tenant's session is refused."""
    listener = StubListener({("a", "s-1")})
    by_header = tenant_from_header("X-Tenant")
    statuses = []
    for tenant in (b"a", b"b"):
        scope = http_scope((b"x-session-id", b"s-1"), (b"x-tenant", tenant))
        statuses.append(run(listener, scope, tenant=by_header)[1][0]["status"])
    assert [401, 200] == statuses


def test_a_session_without_a_tenant_is_refused_with_400() -> None:
    """A session that cannot be looked up must not reach the app."""
    app, sent = run(
        StubListener(), http_scope((b"x-session-id", b"s-1")), tenant=tenant_from_header("x-t")
    )
    assert ([], 400) == (app.calls, sent[0]["status"])


def test_the_session_header_is_matched_case_insensitively_and_blank_is_refused() -> None:
    """Header names are case-insensitive in HTTP; a blank or padded value is not a session some
    reader might trim to one, it is refused."""
    get = session_id_from_header("X-Session-Id")
    assert "s-1" == get(http_scope((b"X-SESSION-ID", b"s-1")))
    assert get(http_scope()) is None
    for blank in (b"", b"  ", b" s-1 "):
        with pytest.raises(AmbiguousIdentity):
            get(http_scope((b"x-session-id", blank)))


def test_the_session_cookie_is_found_among_others_and_unquoted() -> None:
    """Browsers send every cookie in one header; values may be quoted (RFC 6265)."""
    get = session_id_from_cookie("session")
    cookie = (b"cookie", b'theme=dark; session="s-9"; sessionx=nope')
    assert "s-9" == get(http_scope(cookie))
    assert get(http_scope((b"cookie", b"sessionx=nope"))) is None
    assert get(http_scope()) is None


def test_one_of_takes_whichever_is_sent_and_first_of_is_the_same_strict_getter() -> None:
    """API clients send the header, browsers the cookie; never two different sessions."""
    for combine in (one_of, first_of):
        get = combine(session_id_from_header("x-session-id"), session_id_from_cookie("session"))
        assert "c" == get(http_scope((b"cookie", b"session=c")))
        assert "h" == get(http_scope((b"x-session-id", b"h")))
        with pytest.raises(AmbiguousIdentity):
            get(http_scope((b"cookie", b"session=c"), (b"x-session-id", b"h")))


class WebSocketApp:
    """Accepts, then echoes until the client (or the middleware) disconnects."""

    def __init__(self) -> None:
        self.calls = 0
        self.disconnect: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls += 1
        assert "websocket.connect" == (await receive())["type"]
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnect = dict(message)
                return
            await send({"type": "websocket.send", "text": message.get("text", "")})


class WebSocketClient:
    """The server side of one WebSocket as the middleware sees it: a queue of client frames."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.incoming.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(dict(message))

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


async def _until(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def ws_scope() -> Scope:
    return http_scope((b"x-session-id", b"s-1"), kind="websocket")


def middleware_for(listener: StubListener, app: Any) -> RevocationMiddleware:
    return RevocationMiddleware(
        app, listener, session_id_from_header("x-session-id"), constant(TENANT),
        websocket_check_s=0.01,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("listener", "code"),
    [(StubListener({"s-1"}), 4401), (StubListener(healthy=False, fail_closed=True), 1013)],
)
def test_a_websocket_handshake_of_a_revoked_session_is_refused(
    listener: StubListener, code: int
) -> None:
    """A revoked session must not open a WebSocket (close before accept: HTTP 403)."""
    app, client = WebSocketApp(), WebSocketClient()
    asyncio.run(middleware_for(listener, app)(ws_scope(), client.receive, client.send))
    assert (0, [{"type": "websocket.close", "code": code}]) == (app.calls, client.sent)


def test_a_live_websocket_is_closed_when_its_session_is_revoked() -> None:
    """A socket opened before the revocation must not outlive it."""
    listener = StubListener()
    app, client = WebSocketApp(), WebSocketClient()

    async def scenario() -> None:
        task = asyncio.create_task(
            middleware_for(listener, app)(ws_scope(), client.receive, client.send)
        )
        await client.incoming.put({"type": "websocket.receive", "text": "hi"})
        await _until(lambda: "websocket.send" in client.types())
        listener.revoked.add((TENANT, "s-1"))
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    expected = ["websocket.accept", "websocket.send", "websocket.close"]
    assert expected == client.types()
    assert 4401 == client.sent[-1]["code"]
    assert {"type": "websocket.disconnect", "code": 4401} == app.disconnect


def test_a_live_websocket_of_another_tenant_stays_open() -> None:
    """Revoking tenant b's session of the same id must not close tenant a's socket."""
    listener = StubListener()
    app, client = WebSocketApp(), WebSocketClient()

    async def scenario() -> None:
        task = asyncio.create_task(
            middleware_for(listener, app)(ws_scope(), client.receive, client.send)
        )
        await _until(lambda: "websocket.accept" in client.types())
        listener.revoked.add(("other-tenant", "s-1"))
        await client.incoming.put({"type": "websocket.receive", "text": "still here"})
        await _until(lambda: "websocket.send" in client.types())
        await asyncio.sleep(0.05)  # several watch intervals pass without a close
        await client.incoming.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert ["websocket.accept", "websocket.send"] == client.types()
    assert {"type": "websocket.disconnect", "code": 1000} == app.disconnect


# -- ambiguous identity: the middleware must check the session the app will use ---------------

COOKIE_OR_HEADER = one_of(session_id_from_header("x-session-id"), session_id_from_cookie("session"))
REVOKED = "s-1"


def cookie_getter() -> Any:
    return session_id_from_cookie("session")


def test_two_session_cookies_are_refused_as_ambiguous() -> None:
    """Frameworks give the app the last of two cookies, the middleware once checked the first:
    a revoked session passed behind a made-up one."""
    scope = http_scope((b"cookie", f"session=anything; session={REVOKED}".encode()))
    app, sent = run(StubListener({REVOKED}), scope, getter=cookie_getter())
    assert ([], 400) == (app.calls, sent[0]["status"])


def test_a_header_and_a_cookie_that_disagree_are_refused() -> None:
    """A made-up header must not vouch for a revoked cookie the app then reads."""
    scope = http_scope((b"x-session-id", b"anything"), (b"cookie", f"session={REVOKED}".encode()))
    app, sent = run(StubListener({REVOKED}), scope, getter=COOKIE_OR_HEADER)
    assert ([], 400) == (app.calls, sent[0]["status"])


def test_a_header_and_a_cookie_that_agree_are_one_session() -> None:
    """Sending the same session both ways is not ambiguous."""
    scope = http_scope((b"x-session-id", b"s-2"), (b"cookie", b"session=s-2"))
    app, sent = run(StubListener({REVOKED}), scope, getter=COOKIE_OR_HEADER)
    assert (["http"], 200) == (app.calls, sent[0]["status"])


AMBIGUOUS = [
    ("two headers", [(b"x-session-id", b"s-2"), (b"x-session-id", b"s-1")]),
    ("underscore twin header", [(b"x-session-id", b"s-2"), (b"x_session_id", b"s-1")]),
    ("leading space", [(b"x-session-id", b" s-1")]),
    ("trailing tab", [(b"x-session-id", b"s-1\t")]),
    ("control character", [(b"x-session-id", b"s-1\x00")]),
    ("empty header", [(b"x-session-id", b"")]),
    ("over-long header", [(b"x-session-id", b"s" * 257)]),
    ("non-ASCII header", [(b"x-session-id", "s-1\u00e9".encode("latin-1"))]),
    ("two cookies", [(b"cookie", b"session=s-2; session=s-1")]),
    ("two cookie lines", [(b"cookie", b"session=s-2"), (b"cookie", b"session=s-1")]),
    ("cookie name case", [(b"cookie", b"Session=s-1")]),
    ("cookie name case beside", [(b"cookie", b"session=s-2; SESSION=s-1")]),
    ("space-separated cookies", [(b"cookie", b"x=1 session=s-1")]),
    ("comma-separated cookies", [(b"cookie", b"session=s-2,session=s-1")]),
    ("space in cookie value", [(b"cookie", b"session= s-1")]),
    ("empty cookie", [(b"cookie", b"session=")]),
    ("escaped quoted cookie", [(b"cookie", b'session="s\\-1"')]),
    ("octal-escaped cookie", [(b"cookie", b'session="s\\0551"')]),
    ("percent-encoded cookie", [(b"cookie", b"session=s%2D1")]),
    ("cookie inside a quoted value", [(b"cookie", b'x="a; session=s-1"; session=s-2')]),
    ("header and cookie differ", [(b"x-session-id", b"s-2"), (b"cookie", b"session=s-1")]),
]


@pytest.mark.parametrize("headers", [h for _, h in AMBIGUOUS], ids=[name for name, _ in AMBIGUOUS])
def test_ambiguous_or_malformed_identity_is_refused_with_400(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Every reader must find the same session the middleware checked, or none: anything a
    framework could read differently is refused before the app runs."""
    app, sent = run(StubListener({REVOKED}), http_scope(*headers), getter=COOKIE_OR_HEADER)
    assert ([], 400) == (app.calls, sent[0]["status"])
    assert b"invalid_request" in sent[1]["body"]


def test_a_header_spelled_with_underscores_is_the_same_header() -> None:
    """Django reads X_Session_Id and X-Session-Id as one header (HTTP_X_SESSION_ID): the
    middleware must check what such an app will read."""
    app, sent = run(StubListener({REVOKED}), http_scope((b"x_session_id", b"s-1")))
    assert ([], 401) == (app.calls, sent[0]["status"])


def test_a_plainly_quoted_cookie_is_one_session() -> None:
    """RFC 6265 allows DQUOTE around a cookie value; every parser strips it alike."""
    get = session_id_from_cookie("session")
    assert "s-9" == get(http_scope((b"cookie", b'theme=dark; session="s-9"')))


class ScopeReader:
    """The wrapped app: records what the middleware handed it in the scope."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.seen.append((scope.get("sessionwarden"), scope["state"].get("sessionwarden")))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_the_checked_identity_is_handed_to_the_app_in_the_scope() -> None:
    """The app must use the session the middleware checked, not read the request again."""
    reader = ScopeReader()
    middleware = RevocationMiddleware(reader, StubListener(), COOKIE_OR_HEADER, constant(TENANT))

    async def send(message: Any) -> None:
        pass

    async def go() -> None:
        await middleware(http_scope((b"cookie", b"session=s-2")), asyncio.Queue().get, send)
        await middleware(http_scope(), asyncio.Queue().get, send)

    asyncio.run(go())
    identity = SessionIdentity(TENANT, "s-2")
    assert [(identity, identity), (None, None)] == reader.seen
    assert ("acme", "s-2") == (identity.tenant, identity.session_id)


def simple_cookie_app() -> Any:
    """A raw ASGI app that reads its session cookie the standard library's way (and so takes
    the last of two, unquotes escapes, splits on whitespace) and serves whatever it reads: it
    knows nothing of revocations, the middleware must."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        jar: SimpleCookie = SimpleCookie()
        for key, value in scope["headers"]:
            if key == b"cookie":
                jar.load(value.decode("latin-1"))
        morsel = jar.get("session")
        status = 200 if morsel is not None else 401
        body = (morsel.value if morsel is not None else "").encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


HOSTILE_COOKIES = [
    f"session=anything; session={REVOKED}",
    f"session={REVOKED}; session=anything",
    f"x=1 session={REVOKED}",
    f'x="a; session=b"; session={REVOKED}',
    f'session="{REVOKED}"',
    'session="s\\0551"',
    f"Session=anything; session={REVOKED}",
    f"session=anything;session={REVOKED}",
    f"session=anything,session={REVOKED}",
    f"session = {REVOKED}",
]


@pytest.mark.parametrize("cookie", HOSTILE_COOKIES)
def test_a_simple_cookie_app_never_serves_the_revoked_session(cookie: str) -> None:
    """Whatever the cookie header, the app behind the middleware never gets a 200 for the
    revoked session: either the middleware refuses, or both read the same live session."""
    app = simple_cookie_app()
    middleware = RevocationMiddleware(
        app, StubListener({REVOKED}), session_id_from_cookie("session"), constant(TENANT)
    )
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope((b"cookie", cookie.encode()))
    asyncio.run(middleware(scope, asyncio.Queue().get, send))
    status, body = sent[0]["status"], sent[1]["body"]
    assert not (status == 200 and body == REVOKED.encode()), (status, body)
    assert status in (400, 401), (status, body)


def starlette_app(revoked: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def data(request: Request) -> JSONResponse:
        checked = request.state.sessionwarden
        return JSONResponse(
            {"checked": checked.session_id if checked else None,
             "cookie": request.cookies.get("session")}
        )  # fmt: skip

    inner = Starlette(routes=[Route("/", data)])
    return RevocationMiddleware(inner, StubListener({revoked}), COOKIE_OR_HEADER, constant(TENANT))


def test_starlette_behind_the_middleware_refuses_duplicate_cookies_and_gets_the_checked_id() -> (
    None
):
    """With Starlette (which gives the app the last cookie of a name) the bypass is closed,
    and ``request.state.sessionwarden`` is the session the middleware checked."""
    from starlette.testclient import TestClient

    with TestClient(starlette_app(REVOKED)) as client:
        dup = client.get("/", headers={"cookie": f"session=anything; session={REVOKED}"})
        mixed = client.get(
            "/", headers={"cookie": f"session={REVOKED}", "x-session-id": "anything"}
        )
        live = client.get("/", headers={"cookie": "session=s-2"})
    assert (400, 400) == (dup.status_code, mixed.status_code)
    assert (200, {"checked": "s-2", "cookie": "s-2"}) == (live.status_code, live.json())


def test_a_websocket_with_an_ambiguous_session_is_refused_before_accept() -> None:
    """Two cookies of the name on a handshake: closed 1008 (policy) before the app runs."""
    app, client = WebSocketApp(), WebSocketClient()
    scope = http_scope((b"cookie", b"session=s-2; session=s-1"), kind="websocket")
    middleware = RevocationMiddleware(
        app, StubListener({"s-1"}), session_id_from_cookie("session"), constant(TENANT)
    )
    asyncio.run(asyncio.wait_for(middleware(scope, client.receive, client.send), 5))
    assert (0, [{"type": "websocket.close", "code": 1008}]) == (app.calls, client.sent)


class PushingListener(StubListener):
    """A stub listener that, like RevocationListener, calls subscribers on its own thread
    after a revocation is applied."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[Any] = []

    def add_revocation_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def revoke_from_thread(self, tenant: str, session_id: str) -> None:
        record = type("Record", (), {"tenant": tenant, "session_id": session_id})()

        def apply() -> None:
            self.revoked.add((tenant, session_id))
            for callback in self.callbacks:
                callback(record)

        thread = threading.Thread(target=apply)
        thread.start()
        thread.join()


def test_a_live_websocket_is_closed_when_the_listener_applies_the_revocation() -> None:
    """The close follows the revocation event, not a poll: with a 30 s backstop the socket is
    still closed within a fraction of a second of the listener applying the revocation."""
    listener = PushingListener()
    app, client = WebSocketApp(), WebSocketClient()
    middleware = RevocationMiddleware(
        app, listener, session_id_from_header("x-session-id"), constant(TENANT),
        websocket_check_s=30.0,
    )  # fmt: skip
    elapsed: list[float] = []

    async def scenario() -> None:
        task = asyncio.create_task(middleware(ws_scope(), client.receive, client.send))
        await _until(lambda: "websocket.accept" in client.types())
        listener.revoke_from_thread("other-tenant", "s-1")  # not this socket's session
        await asyncio.sleep(0.05)
        assert ["websocket.accept"] == client.types()
        start = time.monotonic()
        listener.revoke_from_thread(TENANT, "s-1")
        await asyncio.wait_for(task, 5)
        elapsed.append(time.monotonic() - start)

    asyncio.run(scenario())
    assert ["websocket.accept", "websocket.close"] == client.types()
    assert 4401 == client.sent[-1]["code"]
    assert elapsed[0] < 1.0, elapsed
    assert {} == middleware._sockets, "a closed socket is forgotten"


def test_the_revocation_listener_wakes_the_middleware_through_its_callback() -> None:
    """Wired to a real RevocationListener (over a fake consumer), the middleware subscribes
    by itself: the step that applies the revocation closes the socket, with no poll."""
    consumer = FakeConsumer(1)
    listener = RevocationListener(
        "unused:9092", TOPIC, max_lifetime_s=100.0, clock=Clock(T0), monotonic=Clock(1000.0),
        consumer_factory=consumer.factory, admin_factory=consumer.admin_factory,
    )  # fmt: skip
    listener.start(background=False)
    listener.step(poll_timeout=0)
    app, client = WebSocketApp(), WebSocketClient()
    middleware = RevocationMiddleware(
        app, listener, session_id_from_header("x-session-id"), constant("acme"),
        websocket_check_s=30.0,
    )  # fmt: skip

    async def scenario() -> None:
        task = asyncio.create_task(middleware(ws_scope(), client.receive, client.send))
        await _until(lambda: "websocket.accept" in client.types())
        consumer.append(wire(fake_revocation("s-1")))
        await asyncio.to_thread(listener.step, 0)
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    listener.close()
    assert ["websocket.accept", "websocket.close"] == client.types()
    assert 4401 == client.sent[-1]["code"]


# -- WebSocket caps: one session (or many) cannot open sockets without bound -----------------


class Sockets:
    """Many WebSockets through one middleware: each a client and a task."""

    def __init__(self, middleware: RevocationMiddleware) -> None:
        self.middleware = middleware
        self.clients: list[WebSocketClient] = []
        self.tasks: list[asyncio.Task[None]] = []

    def open(self, session: str) -> WebSocketClient:
        client = WebSocketClient()
        scope = http_scope((b"x-session-id", session.encode()), kind="websocket")
        self.clients.append(client)
        self.tasks.append(asyncio.create_task(self.middleware(scope, client.receive, client.send)))
        return client

    async def answered(self) -> None:
        await _until(lambda: all(c.sent for c in self.clients))

    async def close_all(self) -> None:
        for client in self.clients:
            client.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(asyncio.gather(*self.tasks), 5)


def first_answers(clients: list[WebSocketClient]) -> list[Any]:
    return [c.sent[0]["type"] if c.sent[0]["type"] != "websocket.close" else c.sent[0]["code"]
            for c in clients]  # fmt: skip


def test_websockets_beyond_the_per_session_cap_are_closed_before_accept_with_1013() -> None:
    """64 handshakes of one session at once: exactly the cap is accepted, the rest are told to
    try again later (1013) before accept, and a freed slot can be taken again."""
    app = WebSocketApp()
    middleware = RevocationMiddleware(
        app, StubListener(), session_id_from_header("x-session-id"), constant(TENANT),
        max_websockets_per_session=4,
    )  # fmt: skip
    answers: list[Any] = []

    async def scenario() -> None:
        sockets = Sockets(middleware)
        for _ in range(64):
            sockets.open("s-1")
        await sockets.answered()
        answers.extend(first_answers(sockets.clients))
        accepted = [c for c in sockets.clients if c.sent[0]["type"] == "websocket.accept"]
        accepted[0].incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await _until(lambda: middleware.websockets(TENANT, "s-1") == 3)
        again = sockets.open("s-1")
        await sockets.answered()
        answers.append(again.sent[0]["type"])
        await sockets.close_all()

    asyncio.run(scenario())
    assert (4, 60) == (answers[:64].count("websocket.accept"), answers[:64].count(1013))
    assert "websocket.accept" == answers[64]
    assert 5 == app.calls
    assert {} == middleware._sockets


def test_websockets_beyond_the_process_cap_are_closed_before_accept_with_1013() -> None:
    app = WebSocketApp()
    middleware = RevocationMiddleware(
        app, StubListener(), session_id_from_header("x-session-id"), constant(TENANT),
        max_websockets_per_session=4, max_websockets=5,
    )  # fmt: skip
    answers: list[Any] = []

    async def scenario() -> None:
        sockets = Sockets(middleware)
        for n in range(8):
            sockets.open(f"s-{n}")
        await sockets.answered()
        answers.extend(first_answers(sockets.clients))
        await sockets.close_all()

    asyncio.run(scenario())
    assert (5, 3) == (answers.count("websocket.accept"), answers.count(1013))
    assert 0 == middleware.total_websockets()


def test_open_websockets_cost_one_backstop_poll_not_one_task_each() -> None:
    """Idle sockets are checked by one shared poll (and woken by the revocation callback),
    which still closes every socket of a session once it is revoked."""
    listener = StubListener()
    app = WebSocketApp()
    middleware = RevocationMiddleware(
        app, listener, session_id_from_header("x-session-id"), constant(TENANT),
        websocket_check_s=0.01,
    )  # fmt: skip
    counts: list[int] = []

    async def scenario() -> None:
        sockets = Sockets(middleware)
        before = len(asyncio.all_tasks())
        for n in range(50):
            sockets.open(f"s-{n % 2}")
        await sockets.answered()
        await asyncio.sleep(0.05)  # every app is waiting for its next frame
        counts.append(len(asyncio.all_tasks()) - before)
        listener.revoked.add((TENANT, "s-0"))
        await asyncio.wait_for(asyncio.gather(*sockets.tasks[0::2]), 5)
        counts.append(sum(1 for c in sockets.clients[1::2] if len(c.sent) > 1))
        await sockets.close_all()

    asyncio.run(scenario())
    assert counts[0] <= 2 * 50 + 1, "per socket its own task and its pending receive; one poll"
    assert 0 == counts[1], "the other session's sockets stay open"


def test_the_shared_poll_closes_live_websockets_with_1013_once_a_fail_closed_listener_is_stale(
) -> None:  # fmt: skip
    listener = StubListener(fail_closed=True)
    app = WebSocketApp()
    middleware = middleware_for(listener, app)
    codes: list[int] = []

    async def scenario() -> None:
        sockets = Sockets(middleware)
        for n in range(3):
            sockets.open(f"s-{n}")
        await sockets.answered()
        listener._healthy = False
        await asyncio.wait_for(asyncio.gather(*sockets.tasks), 5)
        codes.extend(c.sent[-1]["code"] for c in sockets.clients)

    asyncio.run(scenario())
    assert [1013, 1013, 1013] == codes
    assert 0 == middleware.total_websockets()
