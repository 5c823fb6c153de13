"""The ASGI middleware against a stub listener: status codes, headers, pass-through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.clients.asgi import (
    RevocationMiddleware,
    Scope,
    constant,
    first_of,
    session_id_from_cookie,
    session_id_from_header,
    tenant_from_header,
)

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


def test_the_session_header_is_matched_case_insensitively_and_blank_means_none() -> None:
    """Header names are case-insensitive in HTTP; an empty value is no session."""
    get = session_id_from_header("X-Session-Id")
    assert "s-1" == get(http_scope((b"X-SESSION-ID", b" s-1 ")))
    assert get(http_scope((b"x-session-id", b"  "))) is None


def test_the_session_cookie_is_found_among_others_and_unquoted() -> None:
    """Browsers send every cookie in one header; values may be quoted (RFC 6265)."""
    get = session_id_from_cookie("session")
    cookie = (b"cookie", b'theme=dark; session="s-9"; sessionx=nope')
    assert "s-9" == get(http_scope(cookie))
    assert get(http_scope((b"cookie", b"sessionx=nope"))) is None
    assert get(http_scope()) is None


def test_first_of_takes_the_header_before_the_cookie() -> None:
    """API clients send the header; browsers only the cookie."""
    get = first_of(session_id_from_header("x-session-id"), session_id_from_cookie("session"))
    both = http_scope((b"cookie", b"session=c"), (b"x-session-id", b"h"))
    assert ("h", "c") == (get(both), get(http_scope((b"cookie", b"session=c"))))


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
