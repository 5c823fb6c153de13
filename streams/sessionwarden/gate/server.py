"""The gate's HTTP shell: every request (any method, any path) is a forward-auth question.

nginx ``auth_request`` sends the client's headers to the gate; Traefik ForwardAuth and Envoy
``ext_authz`` (HTTP) do the same. The shell hands the headers to the pure
:class:`~sessionwarden.gate.decision.Gate`, answers with the verdict's status and its reason in
``X-Sessionwarden-Reason``, and records the verdict in :class:`GateMetrics` afterwards. A request
body is never read (the connection is closed after the answer instead); the standard library
bounds the request line and header lines (64 KiB, 100 headers: 431 beyond), a connection that
sends nothing for ``IDLE_TIMEOUT_S`` is closed, at most ``MAX_CONNECTIONS`` are served at once
(503 ``busy`` beyond), and an error in the decision is a 503 that is logged, never a crash.
Log lines name a session by its salted hash only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from sessionwarden.gate.decision import REASONS, Gate, Verdict
from sessionwarden.ops.logs import SessionHasher

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 10.0
"""A gateway keeps its connections to the gate open; one that sends nothing this long is closed."""
MAX_CONNECTIONS = 1024
"""Connections served at once (a thread each); nginx keeps `keepalive` of them per worker."""
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nX-Sessionwarden-Reason: busy\r\nRetry-After: 1\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)

_CHALLENGE = {
    "revoked": 'Bearer error="invalid_token", error_description="session revoked"',
    "invalid_request": 'Bearer error="invalid_request"',
    "too_large": 'Bearer error="invalid_request"',
}


class GateMetrics:
    """Verdicts by reason, and the decision's time, on the gate's /metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.verdicts = Counter(
            "sessionwarden_gate_verdicts",
            "Forward-auth answers of the gate, by verdict (allowed, refused) and reason.",
            ["verdict", "reason"],
            registry=registry,
        )
        self.decision_seconds = Histogram(
            "sessionwarden_gate_decision_seconds",
            "Time the gate took to decide one request (from its headers to its verdict).",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
            registry=registry,
        )
        for reason, status in REASONS.items():  # every series exists from the start
            self.verdicts.labels("allowed" if status == 200 else "refused", reason)

    def observe(self, verdict: Verdict, seconds: float) -> None:
        self.verdicts.labels("allowed" if verdict.allowed else "refused", verdict.reason).inc()
        self.decision_seconds.observe(seconds)


class GateServer:
    """A threaded HTTP server around one Gate; ``port`` is the bound port."""

    def __init__(
        self,
        host: str,
        port: int,
        gate: Gate,
        metrics: GateMetrics,
        hasher: SessionHasher,
        *,
        clock: Callable[[], float] = time.time,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        handler = type(
            "Handler",
            (_Handler,),
            {
                "gate": gate,
                "metrics": metrics,
                "hasher": hasher,
                "clock": staticmethod(clock),
                "timeout": idle_timeout_s,
            },
        )
        self._httpd = _Server((host, port), handler, max_connections)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="sessionwarden-gate", daemon=True
        )

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._httpd.connections()

    def start(self) -> GateServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()
        self._httpd.drop()


def _drain(request: socket.socket, limit: int = 65_536) -> None:
    """Read what the client already sent (without waiting): closing a socket with unread
    bytes makes the kernel answer with a reset instead of the 503, which the client may then
    never read."""
    while limit > 0:
        try:
            chunk = request.recv(min(limit, 16_384))
        except BlockingIOError:
            return
        if not chunk:
            return
        limit -= len(chunk)


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most ``cap`` at once (one more is answered 503 and closed);
    ``drop()`` cuts every open connection (a gateway's kept-alive ones too), so a closed gate
    answers nothing more."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: type[_Handler], cap: int) -> None:
        self.cap = cap
        self.refused = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = len(self._open) >= self.cap
            if not full:
                self._open.add(request)
        if full:
            self.refused += 1
            with contextlib.suppress(OSError):
                request.setblocking(False)
                _drain(request)
                request.send(_BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def connections(self) -> int:
        with self._lock:
            return len(self._open)

    def drop(self) -> None:
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("gate connection failed", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    gate: Gate
    metrics: GateMetrics
    hasher: SessionHasher
    clock: Callable[[], float]
    protocol_version = "HTTP/1.1"  # keep-alive: gateways reuse their connections to the gate
    disable_nagle_algorithm = True  # an answer is one small write: never wait for an ACK
    server_version = "sessionwarden-gate"
    default_request_version = "HTTP/1.0"  # a malformed request line still gets a status line
    error_message_format = "%(code)d %(message)s\n"
    error_content_type = "text/plain"
    sys_version = ""

    def _check(self) -> None:
        started = time.perf_counter()
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
            for name, value in self.headers.items()
        ]
        try:
            verdict = self.gate.decide(headers, self.clock())
        except Exception:
            log.exception("gate decision failed")
            verdict = Verdict(503, "stale")
        self.metrics.observe(verdict, time.perf_counter() - started)
        if not verdict.allowed and verdict.session_id is not None:
            log.debug(
                "gate refused",
                extra={"reason": verdict.reason, "tenant": verdict.tenant,
                       "session": self.hasher(verdict.session_id)},
            )  # fmt: skip
        self._answer(verdict)

    def _answer(self, verdict: Verdict) -> None:
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the body is never read
        self.send_response(verdict.status)
        self.send_header("X-Sessionwarden-Reason", verdict.reason)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        if verdict.allowed:
            if verdict.tenant is not None:
                self.send_header("X-Sessionwarden-Tenant", verdict.tenant)
            if verdict.user is not None:
                self.send_header("X-Sessionwarden-User", verdict.user)
        elif verdict.status == 401:
            self.send_header("WWW-Authenticate", _CHALLENGE.get(verdict.reason, "Bearer"))
        elif verdict.status == 503:
            self.send_header("Retry-After", "1")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _check

    def log_message(self, format: str, *args: Any) -> None:
        """One line per request would be the gateway's access log again."""
