"""/metrics, /healthz and /readyz of one process, served from a thread of its own.

The server runs beside the processing loop, never inside it, so a stalled loop is reported
as unhealthy instead of going silent. It binds to 127.0.0.1 unless the settings say
otherwise, and every request must carry the bearer token: read from
``metrics_token_file``, or made at random at start and written (mode 0600) to
``<metrics_token_dir or the working directory>/<service>-<port>.metrics-token`` (removed on
close), whose path is logged (never the token).

Connections are bounded: a connection that sends no request within ``idle_timeout_s`` is
closed, and at most ``MAX_CONNECTIONS`` are served at once. When that many are open, a new
connection takes the place of the oldest one still waiting for its request (an idle or
trickling client, never a request being answered); when every one is answering, the new one
gets 503 at once. So an unauthenticated client can neither pile up threads nor keep a scrape
out by holding connections open.

Any process gets all three endpoints with one line::

    server = serve_metrics(settings, settings.metrics.detect_port, registry, progress, "detect")
    ...
    server.close()
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from sessionwarden.config.settings import Settings
from sessionwarden.ops.progress import Progress, Verdict
from sessionwarden.ops.tokens import new_token, read_token, write_token

log = logging.getLogger(__name__)


MAX_CONNECTIONS = 32
"""Connections served at once (each has a thread); Prometheus and a probe or two need few."""
IDLE_TIMEOUT_S = 5.0
"""A connection must send its request within this long (between any two reads)."""
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _BoundedServer(HTTPServer):
    """An HTTP server with a thread per connection and a cap on connections; see the module."""

    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[_Handler], cap: int) -> None:
        self.cap = cap
        self.evicted = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._open: dict[Any, threading.Thread] = {}  # connection -> its thread
        self._waiting: dict[Any, None] = {}  # no whole request read yet; oldest first
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """In the accept loop: make room (or refuse), then serve in a thread of its own."""
        with self._lock:
            victim = next(iter(self._waiting), None) if len(self._open) >= self.cap else None
            busy = len(self._open) >= self.cap and victim is None
            thread = self._open.get(victim) if victim is not None else None
        if busy:
            self._refuse(request)
            return
        if victim is not None:
            self.evicted += 1
            with contextlib.suppress(OSError):  # its read returns at once and its thread ends
                victim.shutdown(socket.SHUT_RDWR)
            if thread is not None:
                thread.join(1.0)
            if thread is not None and thread.is_alive():
                self._refuse(request)
                return
        serve = threading.Thread(
            target=self._serve,
            args=(request, client_address),
            name="metrics-connection",
            daemon=True,
        )
        with self._lock:
            self._open[request] = serve
            self._waiting[request] = None
        serve.start()

    def request_read(self, request: Any) -> None:
        """The handler read a whole request: this connection is no longer evictable."""
        with self._lock:
            self._waiting.pop(request, None)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._open.pop(request, None)
                self._waiting.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is no error worth a traceback on stderr."""
        log.debug("metrics connection failed", exc_info=True)

    def _refuse(self, request: Any) -> None:
        self.refused += 1
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(_BUSY)
        self.shutdown_request(request)


class MetricsServer:
    """A threaded HTTP server for one registry and one Progress; ``port`` is the bound port."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        progress: Progress | None,
        token: str,
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        if not token:
            raise ValueError("the metrics server needs a bearer token")
        handler = type(
            "Handler",
            (_Handler,),
            {
                "registry": registry,
                "progress": progress,
                "token": token.encode(),
                "timeout": idle_timeout_s,  # StreamRequestHandler sets it on the socket
            },
        )
        self._httpd = _BoundedServer((host, port), handler, max_connections)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self.token_file: Path | None = None
        self.generated = False  # the token file is this server's own: removed on close
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics-server", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info(
            "metrics serving",
            extra={"host": self.host, "port": self.port, "token_file": str(self.token_file)},
        )
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
        if self.generated and self.token_file is not None:
            self.token_file.unlink(missing_ok=True)


def serve_metrics(
    settings: Settings,
    port: int,
    registry: CollectorRegistry,
    progress: Progress | None,
    service: str,
) -> MetricsServer | None:
    """Start serving; None when metrics are disabled or the port cannot be bound (logged:
    processing must not stop because an observer's port is taken). A token file that cannot
    be read is a configuration error (ConfigError)."""
    if not settings.metrics.enabled:
        return None
    given = settings.metrics.token_file
    token = read_token(given)[0] if given is not None else new_token()
    try:
        server = MetricsServer(settings.metrics.host, port, registry, progress, token)
    except OSError as exc:  # enforcement goes on; the missing endpoint is what alerts
        log.error(
            "metrics server not started",
            extra={"host": settings.metrics.host, "port": port, "error": str(exc)},
        )
        return None
    if given is None:
        folder = settings.metrics.token_dir or Path.cwd()
        given = write_token(folder / f"{service}-{server.port}.metrics-token", token)
        server.generated = True
    server.token_file = given
    return server.start()


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    progress: Progress | None
    token: bytes
    server_version = "sessionwarden"
    sys_version = ""
    server: _BoundedServer

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # the request line and every header
        self.server.request_read(self.request)
        return parsed

    def do_GET(self) -> None:
        if not self._authorized():
            self._send(401, b"unauthorized\n", "text/plain", {"WWW-Authenticate": "Bearer"})
            return
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz") and self.progress is not None:
            verdict = self.progress.health() if path == "/healthz" else self.progress.readiness()
            self._verdict(verdict)
        else:
            self._send(404, b"not found\n", "text/plain")

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), b"Bearer " + self.token)

    def _verdict(self, verdict: Verdict) -> None:
        body = orjson.dumps(
            {"ok": verdict.ok, "status": verdict.reason, **verdict.detail},
            option=orjson.OPT_NON_STR_KEYS,
        )
        self._send(200 if verdict.ok else 503, body + b"\n", "application/json")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""
