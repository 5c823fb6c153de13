"""The dashboard's token gate: a request passes with the login cookie alone; anything ambiguous
or malformed is refused with 401, never a server error."""

from __future__ import annotations

import asyncio
from typing import Any

from sessionwarden.sdk.asgi import Receive, Scope, Send
from sessionwarden.web.dashboard.app import COOKIE, TokenGate

TOKEN = "a-dashboard-token-of-enough-length"


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"state"})


def call(gate: TokenGate, method: str, path: str, cookie: str = "", body: bytes = b"") -> Any:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"accept", b"application/json"), (b"cookie", cookie.encode())]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": headers,
    }
    asyncio.run(gate(scope, receive, send))
    return sent[0]


def login_cookie(gate: TokenGate) -> str:
    start = call(gate, "POST", "/login", body=f"token={TOKEN}".encode())
    cookies = [v.decode() for k, v in start["headers"] if k == b"set-cookie"]
    return cookies[0].split(";")[0].split("=", 1)[1]


def test_the_login_cookie_passes_and_a_doubled_one_is_refused_with_401() -> None:
    """A doubled cookie must neither pass nor crash the gate into a 500."""
    gate = TokenGate(inner, TOKEN)
    good = login_cookie(gate)

    def status(cookie: str) -> int:
        return int(call(gate, "GET", "/state", cookie)["status"])

    assert 200 == status(f"{COOKIE}={good}")
    assert 401 == status(f"{COOKIE}=forged; {COOKIE}={good}")
    assert 401 == status(f"{COOKIE}={good}; {COOKIE}={good}")
    assert 401 == status(f"{COOKIE}= {good}")
