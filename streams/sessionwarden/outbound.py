"""Outbound HTTP(S) of the product's clients: JWKS and SSF metadata, token and introspection
endpoints, SSF push and polling, the Keycloak admin API. One call, one deadline, a bounded
answer, and no redirect to another origin.

Plain ``urllib.request.urlopen`` is unfit for them in two ways. It follows a redirect to any
host and carries the request's headers along, so an ``Authorization`` header (a poll bearer
token, the introspection client's secret) reaches whoever the answer points at, and an https
URL may be sent on to plain http. And its ``timeout`` bounds each socket operation, not the
call: an endpoint that sends a byte every few seconds holds the caller as long as it likes
(a JWKS fetch holds the key lock of every verification meanwhile).

:func:`exchange` follows a redirect of a GET only within the origin (scheme, host and port)
of the URL asked for, and never one of another method (urllib would turn a POST into a GET
without its body, and a push would count as delivered); any other is an ``HTTPError`` with
the redirect's status. A watchdog cuts the
connection once ``timeout_s`` has passed since the call began, whatever phase it is in
(connecting, headers, body): the call then raises :class:`TimeoutError`. At most
``max_bytes + 1`` bytes of an answer are read (a longer one is the caller's to refuse). Every
failure is an ``OSError`` (``HTTPError`` for an answer that is not 2xx, its body already read
within the same bounds), never an ``http.client`` exception.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, the port filled in for http and https."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class _Deadline:
    """Cuts every connection it tracks once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def track(self, conn_type: type[http.client.HTTPConnection]) -> Callable[..., Any]:
        """A connection factory whose sockets are cut at the deadline: the one it connects
        (the TLS handshake's) and the one it reads from (the response keeps it after the
        connection has let go of it)."""

        def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
            conn = conn_type(*args, **kwargs)
            create, connect = conn._create_connection, conn.connect  # type: ignore[attr-defined]

            def create_tracked(*a: Any, **kw: Any) -> socket.socket:
                return self._add(create(*a, **kw))

            def connect_tracked() -> None:
                connect()
                self._add(conn.sock)

            conn._create_connection = create_tracked  # type: ignore[attr-defined]
            conn.connect = connect_tracked  # type: ignore[method-assign]
            return conn

        return make

    def _add(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._socks.append(sock)
            expired = self.expired
        if expired:
            self._cut()
        return sock

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Http(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._deadline.track(http.client.HTTPConnection), req)


class _Https(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline, context: ssl.SSLContext | None) -> None:
        super().__init__(context=context)
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        conn = self._deadline.track(http.client.HTTPSConnection)
        return self.do_open(conn, req, context=self._context)  # type: ignore[attr-defined]


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    """Follows a redirect of a GET or HEAD within the origin of the request's URL, no other."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.get_method() not in ("GET", "HEAD") or origin(newurl) != origin(req.full_url):
            raise urllib.error.HTTPError(
                req.full_url, code, "a redirect is not followed", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(
    request: urllib.request.Request | str,
    *,
    timeout_s: float,
    max_bytes: int,
    context: ssl.SSLContext | None = None,
) -> bytes:
    """The body of a 2xx answer to ``request`` (:func:`exchange`)."""
    return exchange(request, timeout_s=timeout_s, max_bytes=max_bytes, context=context)[1]


def exchange(
    request: urllib.request.Request | str,
    *,
    timeout_s: float,
    max_bytes: int,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """The status and body of a 2xx answer to ``request`` (at most ``max_bytes + 1`` bytes
    read); raises ``HTTPError`` for any other status (its body, as bounded, in ``read()``),
    :class:`TimeoutError` past ``timeout_s`` in all, another ``OSError`` when no answer came."""
    with _Deadline(timeout_s) as deadline:
        opener = urllib.request.build_opener(
            _Http(deadline), _Https(deadline, context), _SameOrigin()
        )
        try:
            with opener.open(request, timeout=timeout_s) as answer:
                status: int = answer.status
                body: bytes = answer.read(max_bytes + 1)
            if deadline.expired:  # what was read may be cut short
                raise TimeoutError(f"no whole answer within {timeout_s} s")
            return status, body
        except urllib.error.HTTPError as exc:
            with exc:
                try:
                    error_body = exc.read(max_bytes + 1) if exc.fp is not None else b""
                except (OSError, http.client.HTTPException):
                    error_body = b""
            if deadline.expired:
                raise TimeoutError(f"no whole answer within {timeout_s} s") from None
            raise urllib.error.HTTPError(
                exc.url, exc.code, exc.msg, exc.headers, io.BytesIO(error_body)
            ) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if deadline.expired:
                raise TimeoutError(f"no whole answer within {timeout_s} s") from None
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"not an HTTP answer: {type(exc).__name__}") from None
