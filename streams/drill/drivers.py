"""The drill's drivers, thin: each one tries a session's permissions on one enforcement point at
the planned moments and records an Attempt per try. Nothing here decides; the audit does.

* HTTP: ``GET <base><path>`` with the session in the ``X-Session-Id`` header; 2xx is allowed,
  anything else (401/403 refused, 503 fail-closed) is not.
* WebSocket: a connection to ``/ws/echo`` opened at sign-in; each try sends a frame and waits
  for its echo. Once the service closes it, every later try reconnects with the same session
  (what a client that ignores the close would do), and the handshake must be refused.
* PostgreSQL: a connection bound to the session for its life (``bind_connection``), opened
  before the revocation and kept open, and per-transaction binding (``session_transaction``)
  on a second connection; each try reads the protected table.
* Browser: the service's page in a tab and in a second tab of the same browser context; a try
  reads whether the protected content (``#balance``) is still on screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg

from streams.drill.audit import Attempt
from streams.pg.guard import bind_connection, session_transaction

Record = Callable[[Attempt], None]
SESSION_HEADER = "X-Session-Id"
PG_QUERY = "SELECT count(*) FROM app.documents"


@dataclass(frozen=True)
class Target:
    label: str
    session_id: str
    attempts: tuple[float, ...]  # wall-clock times


def stamp(sent: float, allowed: bool) -> float:
    """A granted attempt counts from when it was sent, a refused one from when it was answered:
    a slow answer can neither hide a bypass nor fake a false cut-off."""
    return sent if allowed else time.time()


async def _until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def http_session(
    client: aiohttp.ClientSession, base: str, path: str, case: str, target: Target, record: Record
) -> None:
    headers = {SESSION_HEADER: target.session_id}
    for t in target.attempts:
        await _until(t)
        sent = time.time()
        try:
            async with client.get(base + path, headers=headers, allow_redirects=False) as resp:
                await resp.read()
                allowed = 200 <= resp.status < 300
        except (aiohttp.ClientError, TimeoutError):
            allowed = False
        record(Attempt(case, "http", target.label, path, stamp(sent, allowed), allowed))


async def websocket_session(
    client: aiohttp.ClientSession, base: str, case: str, target: Target, record: Record
) -> None:
    url = base.replace("http://", "ws://", 1) + "/ws/echo"
    headers = {SESSION_HEADER: target.session_id}
    ws: aiohttp.ClientWebSocketResponse | None = None
    try:
        for t in target.attempts:
            await _until(t)
            sent = time.time()
            if ws is None or ws.closed:
                ws = await _connect(client, url, headers)
            allowed = ws is not None and await _echo(ws)
            at = stamp(sent, allowed)
            record(Attempt(case, "websocket", target.label, "/ws/echo", at, allowed))
    finally:
        if ws is not None:
            await ws.close()


async def _connect(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> aiohttp.ClientWebSocketResponse | None:
    try:
        return await client.ws_connect(url, headers=headers, heartbeat=None)
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _echo(ws: aiohttp.ClientWebSocketResponse) -> bool:
    try:
        await ws.send_str("ping")
        msg = await ws.receive(timeout=2.0)
    except (aiohttp.ClientError, ConnectionError, TimeoutError):
        return False
    return msg.type == aiohttp.WSMsgType.TEXT and msg.data == "ping"


def run_async(jobs: list[Callable[[aiohttp.ClientSession], Any]]) -> None:
    """Run the HTTP and WebSocket jobs concurrently on one event loop (this thread)."""

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=200)
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
            await asyncio.gather(*(job(client) for job in jobs))

    asyncio.run(main())


def postgres_session(dsn: str, tenant: str, target: Target, record: Record) -> None:
    """Both PostgreSQL cases of one session (run in a thread of its own)."""
    kept = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    pooled = psycopg.connect(dsn, connect_timeout=10)
    try:
        bind_connection(kept, tenant, target.session_id)
        for t in target.attempts:
            delay = t - time.time()
            if delay > 0:
                time.sleep(delay)
            sent = time.time()
            allowed = _read(kept)
            record(Attempt("pg-kept-connection", "postgres", target.label, "bound connection",
                           stamp(sent, allowed), allowed))  # fmt: skip
            sent = time.time()
            allowed = _read_in_transaction(pooled, tenant, target.session_id)
            record(Attempt("pg-transaction", "postgres", target.label, "session_transaction",
                           stamp(sent, allowed), allowed))  # fmt: skip
    finally:
        kept.close()
        pooled.close()


def _read(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute(PG_QUERY).fetchone()
    except psycopg.Error:  # refused (28000), or the backend was terminated
        return False
    return True


def _read_in_transaction(conn: psycopg.Connection[Any], tenant: str, session_id: str) -> bool:
    try:
        with session_transaction(conn, tenant, session_id) as cur:
            cur.execute(PG_QUERY).fetchone()
    except psycopg.Error:  # refused at the binding or by the row policy, or cancelled
        return False
    return True


class BrowserDriver:
    """Pages of the browser sessions, two tabs each, polled from this thread (Playwright's sync
    API is single-threaded). ``wait_script``: wait until each page's revocation stream is open
    (False for the page variant without the script)."""

    PROTECTED = "!!document.querySelector('#balance')"

    def __init__(self, browser: Any, base: str, wait_script: bool) -> None:
        self.browser, self.base, self.wait_script = browser, base, wait_script
        self.pages: list[tuple[str, str, Any]] = []  # (session label, case, page)
        self._contexts: list[Any] = []

    def open(self, label: str, session_id: str) -> str | None:
        """Open both tabs of a session; why not, if a page did not load or connect (its case
        then has no attempts, which the audit reports as unproven)."""
        context = self.browser.new_context()
        self._contexts.append(context)
        context.add_cookies([{"name": "session", "value": session_id, "url": self.base}])
        for case in ("browser-tab", "browser-second-tab"):
            page = context.new_page()
            try:
                page.goto(self.base + "/", timeout=30_000)
                if self.wait_script:
                    page.wait_for_function(
                        "window.sessionwarden && window.sessionwarden.connected", timeout=30_000
                    )
            except Exception as exc:  # Playwright's errors: a timeout, a crashed page
                return f"{case} of {label}: {str(exc).splitlines()[0]}"
            self.pages.append((label, case, page))
        return None

    def labels(self) -> list[str]:
        return sorted({label for label, _, _ in self.pages})

    def poll(self, targets: dict[str, Target], record: Record) -> None:
        """One try on every page whose session still has tries planned."""
        now = time.time()
        for label, case, page in self.pages:
            target = targets[label]
            if now < target.attempts[0] or now > target.attempts[-1]:
                continue
            sent = time.time()
            with contextlib.suppress(Exception):  # navigating: no answer this round
                shown = bool(page.evaluate(self.PROTECTED))
                record(Attempt(case, "browser", target.label, "/", stamp(sent, shown), shown))

    def close(self) -> None:
        for context in self._contexts:
            with contextlib.suppress(Exception):
                context.close()
