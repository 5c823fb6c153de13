"""The ASGI middleware against a stub listener: status codes, headers, pass-through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.clients.asgi import (
    RevocationMiddleware,
    Scope,
    first_of,
    session_id_from_cookie,
    session_id_from_header,
)

CHALLENGE = 'Bearer error="invalid_token", error_description="session revoked"'


class StubListener:
    def __init__(
        self, revoked: set[str] | None = None, healthy: bool = True, fail_closed: bool = False
    ) -> None:
        self.revoked = revoked or set()
        self._healthy = healthy
        self.fail_closed = fail_closed

    def healthy(self) -> bool:
        return self._healthy

    def is_revoked(self, session_id: str) -> bool:
        if self.fail_closed and not self._healthy:
            return True
        return session_id in self.revoked


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
    listener: StubListener, scope: Scope, getter: Any = None
) -> tuple[Recorder, list[dict[str, Any]]]:
    app = Recorder()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = RevocationMiddleware(
        app, listener, getter or session_id_from_header("X-Session-Id"), retry_after_s=2.5
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


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
def test_non_http_scopes_pass_through(kind: str) -> None:
    """The middleware must not break server start-up or other protocols."""
    app, _ = run(StubListener({"s-1"}), http_scope((b"x-session-id", b"s-1"), kind=kind))
    assert [kind] == app.calls


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
