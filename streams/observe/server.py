"""/metrics, /healthz and /readyz of one process, served from a thread of its own.

The server runs beside the processing loop, never inside it, so a stalled loop is reported
as unhealthy instead of going silent. It binds to 127.0.0.1 unless the settings say
otherwise, and every request must carry the bearer token: read from
``metrics_token_file``, or made at random at start and written (mode 0600) to
``<metrics_token_dir or the working directory>/<service>-<port>.metrics-token`` (removed on
close), whose path is logged (never the token).

Any process gets all three endpoints with one line::

    server = serve_metrics(settings, settings.detect_metrics_port, registry, progress, "detect")
    ...
    server.close()
"""

from __future__ import annotations

import hmac
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.observe.progress import Progress, Verdict
from streams.settings import Settings
from streams.tokens import new_token, read_token, write_token

log = logging.getLogger(__name__)


class MetricsServer:
    """A threaded HTTP server for one registry and one Progress; ``port`` is the bound port."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        progress: Progress | None,
        token: str,
    ) -> None:
        if not token:
            raise ValueError("the metrics server needs a bearer token")
        handler = type(
            "Handler",
            (_Handler,),
            {"registry": registry, "progress": progress, "token": token.encode()},
        )
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
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
    if not settings.metrics_enabled:
        return None
    given = settings.metrics_token_file
    token = read_token(given)[0] if given is not None else new_token()
    try:
        server = MetricsServer(settings.metrics_host, port, registry, progress, token)
    except OSError as exc:  # enforcement goes on; the missing endpoint is what alerts
        log.error(
            "metrics server not started",
            extra={"host": settings.metrics_host, "port": port, "error": str(exc)},
        )
        return None
    if given is None:
        folder = settings.metrics_token_dir or Path.cwd()
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
