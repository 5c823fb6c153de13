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

Given a ``destination`` rule (SSF push: the URL is chosen by whoever created the stream), the
host is resolved by the call itself, every address it resolves to must pass the rule
(:func:`reachable`), the connection goes to one of those addresses (a name that resolves
elsewhere a moment later changes nothing), and no proxy is used; otherwise the call raises
:class:`DestinationRefused`.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


class DestinationRefused(ConnectionError):
    """The host resolves to an address the call may not reach."""


_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def reachable(ip: str, private: bool) -> bool:
    """Whether a call chosen by someone outside may connect to ``ip``: a global unicast
    address; with ``private`` also loopback and private networks (RFC 1918, unique local,
    shared address space). Never link-local (cloud metadata services answer there),
    unspecified (0.0.0.0 reaches this host) or multicast. An IPv4 address inside IPv6
    (mapped, NAT64) is judged as itself."""
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            ip.split("%", 1)[0]
        )
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        elif addr in _NAT64:
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr.is_link_local or addr.is_unspecified or addr.is_multicast:
        return False
    if addr.is_global:
        return True
    return private and (addr.is_private or addr.is_loopback or addr in _SHARED)


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
        self._ends = time.monotonic() + seconds
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def track(
        self,
        conn_type: type[http.client.HTTPConnection],
        destination: Callable[[str], bool] | None = None,
    ) -> Callable[..., Any]:
        """A connection factory whose sockets are cut at the deadline: the one it connects
        (the TLS handshake's) and the one it reads from (the response keeps it after the
        connection has let go of it); with ``destination``, one that connects only to an
        address the rule lets through."""

        def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
            conn = conn_type(*args, **kwargs)
            create, connect = conn._create_connection, conn.connect  # type: ignore[attr-defined]

            def create_tracked(
                address: tuple[str, int], timeout: Any = None, *a: Any, **kw: Any
            ) -> socket.socket:
                host, port = address
                last: OSError = ConnectionError(f"{host} has no address")
                for ip in self._resolved(host, port, destination):
                    left = self.left()
                    try:
                        return self._add(create((ip, port), min(timeout or left, left), *a, **kw))
                    except OSError as exc:
                        last = exc
                raise last

            def connect_tracked() -> None:
                connect()
                self._add(conn.sock)

            conn._create_connection = create_tracked  # type: ignore[attr-defined]
            conn.connect = connect_tracked  # type: ignore[method-assign]
            return conn

        return make

    def left(self) -> float:
        """Seconds until the deadline; :class:`TimeoutError` once it has passed."""
        left = self._ends - time.monotonic()
        if left <= 0:
            self._cut()
            raise TimeoutError("the deadline passed")
        return left

    def _resolved(
        self, host: str, port: int, destination: Callable[[str], bool] | None
    ) -> list[str]:
        """The addresses of ``host`` (every one passing ``destination``, when given),
        resolved by the deadline."""
        found: list[Any] = []
        done = threading.Event()

        def lookup() -> None:
            try:
                found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except (OSError, UnicodeError) as exc:
                found.append(exc)
            finally:
                done.set()

        threading.Thread(target=lookup, name="sessionwarden-resolve", daemon=True).start()
        if not done.wait(self.left()):
            self._cut()
            raise TimeoutError(f"{host} did not resolve in time")
        if isinstance(found[0], Exception):
            raise ConnectionError(f"{host} does not resolve: {found[0]}")
        ips = list(dict.fromkeys(str(info[4][0]) for info in found[0]))
        if destination is not None and (not ips or not all(destination(ip) for ip in ips)):
            raise DestinationRefused(f"{host} resolves to an address this call may not reach")
        return ips

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
    def __init__(self, deadline: _Deadline, destination: Callable[[str], bool] | None) -> None:
        super().__init__()
        self._deadline = deadline
        self._destination = destination

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        conn = self._deadline.track(http.client.HTTPConnection, self._destination)
        return self.do_open(conn, req)


class _Https(urllib.request.HTTPSHandler):
    def __init__(
        self,
        deadline: _Deadline,
        context: ssl.SSLContext | None,
        destination: Callable[[str], bool] | None,
    ) -> None:
        super().__init__(context=context)
        self._deadline = deadline
        self._destination = destination

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        conn = self._deadline.track(http.client.HTTPSConnection, self._destination)
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
    destination: Callable[[str], bool] | None = None,
) -> tuple[int, bytes]:
    """The status and body of a 2xx answer to ``request`` (at most ``max_bytes + 1`` bytes
    read); raises ``HTTPError`` for any other status (its body, as bounded, in ``read()``),
    :class:`TimeoutError` past ``timeout_s`` in all, :class:`DestinationRefused` when the host
    resolves to an address ``destination`` refuses, another ``OSError`` when no answer came."""
    with _Deadline(timeout_s) as deadline:
        handlers: list[urllib.request.BaseHandler] = [
            _Http(deadline, destination), _Https(deadline, context, destination), _SameOrigin()
        ]  # fmt: skip
        if destination is not None:  # the rule is for the destination, not a proxy's address
            handlers.append(urllib.request.ProxyHandler({}))
        opener = urllib.request.build_opener(*handlers)
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
