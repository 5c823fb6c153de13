"""A tiny pure-ASGI service guarded by RevocationMiddleware, with a minimal HTTP/1.1 server.

    .venv/bin/python examples/service/app.py --port 8080
    curl -i -H 'X-Session-Id: s-1' http://127.0.0.1:8080/
    curl -i --cookie 'session=s-1' http://127.0.0.1:8080/
    curl -i http://127.0.0.1:8080/healthz

Any ASGI server can run ``create_app(listener)``; the small server below exists so that the
example (and the integration test) needs nothing beyond the project's own dependencies. It
speaks just enough HTTP/1.1 for that: Content-Length bodies, keep-alive, no chunked requests,
no TLS. Do not put it on a network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import orjson

from streams.clients.asgi import (
    ASGIApp,
    Receive,
    RevocationMiddleware,
    Scope,
    Send,
    constant,
    first_of,
    session_id_from_cookie,
    session_id_from_header,
)
from streams.clients.listener import RevocationListener

log = logging.getLogger("example.service")

SESSION_HEADER = "x-session-id"
SESSION_COOKIE = "session"
MAX_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_BODY = 1024 * 1024

get_session_id = first_of(
    session_id_from_header(SESSION_HEADER), session_id_from_cookie(SESSION_COOKIE)
)


# --- the application -----------------------------------------------------------------------


async def _json(
    send: Send, status: int, doc: dict[str, Any], *headers: tuple[bytes, bytes]
) -> None:
    body = orjson.dumps(doc)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(listener: RevocationListener, tenant: str = "acme") -> ASGIApp:
    """``/`` needs a session (header X-Session-Id or cookie ``session``) of ``tenant`` (the
    service serves one); ``/healthz`` says whether the revocation listener is current."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            status = 200 if listener.healthy() else 503
            doc = {
                "healthy": listener.healthy(),
                "ready": listener.ready(),
                "staleness_s": round(min(listener.staleness(), 1e9), 3),
                "revoked_sessions": len(listener),
            }
            await _json(send, status, doc)
        elif scope["path"] == "/":
            session_id = get_session_id(scope)
            if session_id is None:
                await _json(
                    send, 401, {"error": "login required"}, (b"www-authenticate", b"Bearer")
                )
            else:
                await _json(send, 200, {"session_id": session_id, "hello": "world"})
        else:
            await _json(send, 404, {"error": "not found"})

    return RevocationMiddleware(app, listener, get_session_id, constant(tenant))


# --- a minimal HTTP/1.1 server -------------------------------------------------------------


class BadRequest(Exception):
    pass


async def _read_head(reader: asyncio.StreamReader) -> list[bytes] | None:
    lines: list[bytes] = []
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip() or lines:
                raise BadRequest("incomplete request head") from None
            return None  # the client closed the connection between requests
        if len(line) > MAX_LINE or len(lines) > MAX_HEADERS:
            raise BadRequest("request head too large")
        line = line.rstrip(b"\r\n")
        if not line:
            if lines:
                return lines
            continue  # tolerate blank lines between requests
        lines.append(line)


def _scope(head: list[bytes], server: tuple[str, int], client: tuple[str, int]) -> Scope:
    try:
        method, target, version = head[0].decode("latin-1").split(" ")
    except ValueError:
        raise BadRequest("malformed request line") from None
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(f"unsupported version {version}")
    headers = []
    for line in head[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header")
        headers.append((name.lower(), value.strip()))
    raw_path, _, query = target.encode("latin-1").partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": version[5:],
        "method": method.upper(),
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "server": server,
        "client": client,
    }


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k == name), None)


async def _read_body(reader: asyncio.StreamReader, scope: Scope) -> bytes:
    if _header(scope, b"transfer-encoding") is not None:
        raise BadRequest("chunked request bodies are not supported")
    length = _header(scope, b"content-length")
    size = int(length) if length is not None and length.isdigit() else 0
    if size > MAX_BODY:
        raise BadRequest("request body too large")
    return await reader.readexactly(size) if size else b""


def _keep_alive(scope: Scope) -> bool:
    connection = (_header(scope, b"connection") or b"").lower()
    if scope["http_version"] == "1.1":
        return connection != b"close"
    return connection == b"keep-alive"


class HttpServer:
    """Serves one ASGI app on ``host:port`` (port 0: an ephemeral one, see ``port``)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    def start_in_thread(self) -> int:
        """Run on a private event loop in a daemon thread; returns the bound port."""
        bound = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            bound.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="example-http", daemon=True)
        self._thread.start()
        if not bound.wait(10):
            raise RuntimeError("the HTTP server did not start")
        return self.port

    async def aclose(self) -> None:
        """Stop accepting, then end the open connections (idle keep-alive ones included)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def stop(self) -> None:
        """Counterpart of ``start_in_thread``."""
        loop = self._loop
        if loop is not None and self._thread is not None:
            asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        here = writer.get_extra_info("sockname") or (self.host, self.port)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    break
                scope = _scope(head, (here[0], here[1]), (peer[0], peer[1]))
                body = await _read_body(reader, scope)
                keep = _keep_alive(scope)
                await self._exchange(scope, body, writer, keep)
                if not keep:
                    break
        except BadRequest as exc:
            writer.write(_response_head(400, [], len(str(exc)), False) + str(exc).encode())
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _exchange(
        self, scope: Scope, body: bytes, writer: asyncio.StreamWriter, keep: bool
    ) -> None:
        sent = False
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await _call(self.app, scope, receive, send)
        payload = b"".join(chunks)
        status = int(start.get("status", 500))
        headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", [])]
        writer.write(_response_head(status, headers, len(payload), keep) + payload)
        await writer.drain()


async def _call(
    app: ASGIApp, scope: Scope, receive: Callable[..., Awaitable[Any]], send: Any
) -> None:
    try:
        await app(scope, receive, send)
    except Exception:
        log.exception("the application failed")
        await send({"type": "http.response.start", "status": 500, "headers": []})


def _response_head(status: int, headers: list[tuple[bytes, bytes]], size: int, keep: bool) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}".encode()]
    lines += [
        k + b": " + v for k, v in headers if k.lower() not in (b"content-length", b"connection")
    ]
    lines.append(b"content-length: " + str(size).encode())
    lines.append(b"connection: " + (b"keep-alive" if keep else b"close"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --- entry point ---------------------------------------------------------------------------


def main() -> None:
    from streams.logsetup import configure_logging
    from streams.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--config", help="Sessionwarden settings TOML (environment wins)")
    parser.add_argument("--tenant", default="acme", help="the tenant this service serves")
    parser.add_argument(
        "--fail-open", action="store_true", help="serve while stale (default: 503 while stale)"
    )
    parser.add_argument("--staleness-budget", type=float, default=10.0, metavar="SECONDS")
    args = parser.parse_args()
    settings = load_settings(args.config)
    configure_logging(settings.log_level, "text")
    listener = RevocationListener.from_settings(
        settings, fail_closed=not args.fail_open, staleness_budget_s=args.staleness_budget
    )
    listener.start()
    if not listener.wait_ready(30):
        log.warning("the revocation set is not rebuilt yet; serving anyway")
    server = HttpServer(create_app(listener, args.tenant), args.host, args.port)

    async def run() -> None:
        await server.start()
        print(f"listening on http://{server.host}:{server.port}", flush=True)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()

    try:
        asyncio.run(run())
    finally:
        listener.close()


if __name__ == "__main__":
    main()
