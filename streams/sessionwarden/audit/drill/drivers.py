"""The drill's drivers, thin: each one tries a session's permissions on one enforcement point at
the planned moments and records an Attempt per try. Nothing here decides; the audit does.

* HTTP: ``GET <base><path>`` with the session in the ``X-Session-Id`` header; 2xx is allowed,
  anything else (401/403 refused, 503 fail-closed) is not.
* Gateway: the same through nginx, whose ``auth_request`` asks ``sessionwarden gate``, in front
  of an upstream with no Sessionwarden code.
* WebSocket: a connection to ``/ws/echo`` opened at sign-in; each try sends a frame and waits
  for its echo. A reader notes the moment the service's close frame arrives (``closed``, for
  the close latency the drill reports). Once the service closes it, every later try
  reconnects with the same session (what a client that ignores the close would do), and the
  handshake must be refused.
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

from sessionwarden.audit.drill.audit import Attempt
from sessionwarden.sdk.pg_guard import bind_connection, session_transaction

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
    client: aiohttp.ClientSession,
    base: str,
    path: str,
    case: str,
    target: Target,
    record: Record,
    layer: str = "http",
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
        record(Attempt(case, layer, target.label, path, stamp(sent, allowed), allowed))


Closed = Callable[[str, float], None]
"""(session label, wall time the service's close frame arrived)."""


class _EchoSocket:
    """An open WebSocket with a reader: echoes are queued, the close frame's arrival noted."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.echoes: asyncio.Queue[str] = asyncio.Queue()
        self.closed_at: float | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:  # ends at the close frame (or a broken connection)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.echoes.put_nowait(msg.data)
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self.closed_at = time.time()

    @property
    def closed(self) -> bool:
        return self.closed_at is not None or self.ws.closed

    async def echo(self) -> bool:
        try:
            await self.ws.send_str("ping")
            got = await asyncio.wait_for(self.echoes.get(), 2.0)
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            return False
        return got == "ping"

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def websocket_session(
    client: aiohttp.ClientSession,
    base: str,
    case: str,
    target: Target,
    record: Record,
    closed: Closed | None = None,
) -> None:
    url = base.replace("http://", "ws://", 1) + "/ws/echo"
    headers = {SESSION_HEADER: target.session_id}
    sock: _EchoSocket | None = None
    noted = False

    def note_revoked_close() -> None:
        nonlocal noted
        if noted or sock is None or sock.closed_at is None or closed is None:
            return
        noted = True
        if sock.ws.close_code == 4401:  # closed because its session was revoked
            closed(target.label, sock.closed_at)

    try:
        for t in target.attempts:
            await _until(t)
            note_revoked_close()
            sent = time.time()
            if sock is None or sock.closed:
                sock = await _connect(client, url, headers)
            allowed = sock is not None and await sock.echo()
            at = stamp(sent, allowed)
            record(Attempt(case, "websocket", target.label, "/ws/echo", at, allowed))
        note_revoked_close()
    finally:
        if sock is not None:
            await sock.close()


async def _connect(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> _EchoSocket | None:
    try:
        ws = await client.ws_connect(url, headers=headers, heartbeat=None)
    except (aiohttp.ClientError, TimeoutError):
        return None
    return _EchoSocket(ws)


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
            allowed = read_in_transaction(pooled, tenant, target.session_id)
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


def read_in_transaction(conn: psycopg.Connection[Any], tenant: str, session_id: str) -> bool:
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
