"""Outbound HTTP against hostile endpoints on loopback: a redirect to another origin, an answer
trickled a byte at a time, garbage instead of HTTP. Every client of the product goes through
:func:`sessionwarden.outbound.fetch`; these tests drive the clients themselves."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sessionwarden.gate.decision import TokenRefused
from sessionwarden.gate.jwt import Jwks
from sessionwarden.idp.keycloak import HttpRequest, urllib_transport
from sessionwarden.outbound import fetch, reachable
from sessionwarden.ssf.receiver.bearer import post
from sessionwarden.ssf.receiver.service import _get
from sessionwarden.ssf.transmitter.auth import Introspector
from sessionwarden.ssf.transmitter.pusher import post_set
from tests.unit.gate.tokens import jwks
from tests.unit.ssf.transmitter.factories import stream


class Recorder:
    """A server on another origin: records the Authorization header of every request."""

    def __init__(self, body: bytes = b"{}") -> None:
        self.seen: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                recorder.seen.append(self.headers.get("authorization"))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Raw:
    """A loopback server that answers every connection with ``script(conn)``."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/x"
        self._script = script
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            self.requests.append(conn.recv(65536).split(b"\r\n", 1)[0])
            self._script(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def redirect_to(target: str, status: int = 302) -> Callable[[socket.socket], None]:
    def script(conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.1 {status} Moved\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n".encode()
        )

    return script


def trickle(head: bytes, tail: bytes, every_s: float) -> Callable[[socket.socket], None]:
    def script(conn: socket.socket) -> None:
        conn.sendall(head)
        for byte in tail:
            conn.sendall(bytes([byte]))
            time.sleep(every_s)

    return script


SLOW_BODY = trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n", b"{" + b" " * 58 + b"}", 0.1)
SLOW_HEADERS = trickle(b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 60 + b"\r\n\r\n", 0.1)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder(jwks())
    yield server
    server.close()


@pytest.fixture
def raw() -> Iterator[Callable[[Callable[[socket.socket], None]], Raw]]:
    servers: list[Raw] = []

    def start(script: Callable[[socket.socket], None]) -> Raw:
        servers.append(Raw(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_poll_redirected_to_another_host_does_not_carry_the_bearer_token_there(
    recorder: Recorder, raw: Callable[..., Raw]
) -> None:
    """A poll transmitter's 302 must not hand our bearer token to the host it points at."""
    poll_url = raw(redirect_to(recorder.url)).url
    headers = {"Authorization": "Bearer poll-secret", "Content-Type": "application/json"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(poll_url, b"{}", headers, 1024)
    assert (302, []) == (refused.value.code, recorder.seen)


def test_introspection_redirected_to_another_host_does_not_send_the_client_secret(
    recorder: Recorder, raw: Callable[..., Raw]
) -> None:
    """The introspection client's Basic credentials stay with the configured endpoint."""
    url = raw(redirect_to(recorder.url, 303)).url
    assert None is Introspector(url, "tx", "s3cret", time.time)("some-token")
    assert [] == recorder.seen


def test_a_jwks_redirected_to_another_origin_is_not_loaded(
    recorder: Recorder, raw: Callable[..., Raw]
) -> None:
    """Keys come from the configured origin only: the gate's and the SSF receiver's fetches."""
    url = raw(redirect_to(recorder.url)).url
    with pytest.raises(TokenRefused):
        Jwks.from_url(url, 300, time.monotonic).key(None, "RS256")
    with pytest.raises(urllib.error.HTTPError):
        _get(url)
    assert [] == recorder.seen


def test_a_redirect_within_the_origin_is_followed(raw: Callable[..., Raw]) -> None:
    """A JWKS moved to another path of the same host still loads."""
    moved: list[Raw] = []

    def script(conn: socket.socket) -> None:
        if moved[0].requests[-1].startswith(b"GET /x "):
            redirect_to(moved[0].url.replace("/x", "/keys"), 301)(conn)
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    moved.append(raw(script))
    assert b"{}" == fetch(moved[0].url, timeout_s=2, max_bytes=100)
    assert [b"GET /x HTTP/1.1", b"GET /keys HTTP/1.1"] == moved[0].requests


@pytest.mark.parametrize("script", [SLOW_BODY, SLOW_HEADERS], ids=["body", "headers"])
def test_an_endpoint_trickling_its_answer_is_cut_at_the_deadline(
    raw: Callable[..., Raw], script: Callable[[socket.socket], None]
) -> None:
    """A byte every 0.1 s never trips a per-read timeout of 0.5 s: the whole call is bounded."""
    url = raw(script).url
    started = time.monotonic()
    assert None is Introspector(url, "tx", "s3cret", time.time, timeout_s=0.5)("t")
    assert time.monotonic() - started < 2.0
    started = time.monotonic()
    assert None is urllib_transport(0.5)(HttpRequest("GET", url, {})).status
    assert time.monotonic() - started < 2.0
    started = time.monotonic()
    assert (None, b"") == post_set(stream(endpoint_url=url), b"a.b.c", 0.5, allow_private=True)
    assert time.monotonic() - started < 2.0
    with pytest.raises(TimeoutError):
        fetch(url, timeout_s=0.5, max_bytes=100)


def test_a_push_answered_with_a_redirect_is_not_followed(
    recorder: Recorder, raw: Callable[..., Raw]
) -> None:
    """A 3xx is the receiver not taking the SET (tried again), never a GET counted as sent."""
    for status in (301, 302, 303, 307):
        url = raw(redirect_to(recorder.url, status)).url
        target = stream(endpoint_url=url, authorization_header="Bearer rp-secret")
        assert status == post_set(target, b"a.b.c", 2, allow_private=True)[0]
    assert [] == recorder.seen


def test_a_push_to_a_name_of_a_loopback_address_is_refused_unless_allowed(
    recorder: Recorder,
) -> None:
    """The rule holds for what a name resolves to when the push is made, not for how the URL
    is written (a stream may name its endpoint 127.1, or a host whose DNS answer changes)."""
    port = recorder.server.server_address[1]
    for host in ("localhost", "127.1", "2130706433", "127.0.0.1"):
        target = stream(endpoint_url=f"http://{host}:{port}/", authorization_header="Bearer x")
        assert (None, b"") == post_set(target, b"a.b.c", 2)
    assert [] == recorder.seen
    target = stream(endpoint_url=f"http://localhost:{port}/")
    assert 200 == post_set(target, b"a.b.c", 2, allow_private=True)[0]
    assert 1 == len(recorder.seen)


@pytest.mark.parametrize(
    ("ip", "public", "private"),
    [
        ("8.8.8.8", True, True),
        ("2001:4860::1", True, True),
        ("10.1.2.3", False, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("100.64.0.1", False, True),
        ("fd00::1", False, True),
        ("169.254.169.254", False, False),
        ("fe80::1%eth0", False, False),
        ("0.0.0.0", False, False),
        ("::", False, False),
        ("224.0.0.1", False, False),
        ("::ffff:127.0.0.1", False, True),
        ("::ffff:169.254.169.254", False, False),
        ("64:ff9b::a9fe:a9fe", False, False),
        ("not-an-address", False, False),
    ],
)
def test_which_addresses_a_push_may_reach(ip: str, public: bool, private: bool) -> None:
    """Global unicast always; loopback and private only when allowed; link-local (the cloud
    metadata service), unspecified and multicast never, however the address is wrapped."""
    assert (public, private) == (reachable(ip, False), reachable(ip, True))


def test_garbage_instead_of_http_is_an_oserror_not_a_crash(raw: Callable[..., Raw]) -> None:
    """An endpoint answering something that is not HTTP refuses the token, never raises."""
    url = raw(lambda conn: conn.sendall(b"\x00\x01 not http at all\r\n\r\n")).url
    assert None is Introspector(url, "tx", "s3cret", time.time)("t")
    with pytest.raises(OSError):
        fetch(url, timeout_s=2, max_bytes=100)


def test_an_error_answer_keeps_its_bounded_body(raw: Callable[..., Raw]) -> None:
    """A 401's body is there for the caller (Keycloak's error code), read within the bounds."""
    body = b'{"error":"invalid_client"}' + b" " * 1000
    answer = f"HTTP/1.1 401 No\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    url = raw(lambda conn: conn.sendall(answer)).url
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(urllib.request.Request(url, method="POST", data=b""), timeout_s=2, max_bytes=100)
    assert (401, body[:101]) == (refused.value.code, refused.value.read())
    sent = urllib_transport(2)(HttpRequest("POST", url, {}, b""))
    assert (401, body) == (sent.status, sent.body)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """``slow.example`` resolves only once released (a name server that does not answer);
    ``two.example`` to 127.0.0.2 (nothing listens there) then 127.0.0.1; other names as
    usual."""
    real, release = socket.getaddrinfo, threading.Event()

    def lookup(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        if host == "slow.example":
            release.wait(10)
            raise socket.gaierror("no answer")
        if host == "two.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                    for ip in ("127.0.0.2", "127.0.0.1")]  # fmt: skip
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    yield release
    release.set()


def test_a_name_that_does_not_resolve_in_time_is_cut_at_the_deadline(
    resolver: threading.Event,
) -> None:
    """The lookup ran before the deadline's watch began (it cuts sockets, and a lookup has
    none): a push thread, or a JWKS fetch, waited as long as the resolver did."""
    started = time.monotonic()
    target = stream(endpoint_url="https://slow.example/push")
    assert (None, b"") == post_set(target, b"a.b.c", 0.5, allow_private=True)
    assert time.monotonic() - started < 2.0
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        fetch("http://slow.example/jwks", timeout_s=0.5, max_bytes=100)
    assert time.monotonic() - started < 2.0


def test_each_address_of_a_name_is_tried_in_turn(
    resolver: threading.Event, recorder: Recorder
) -> None:
    """A name with an address that refuses (an IPv6 one where only IPv4 listens) still
    reaches the one that answers, a push's too."""
    url = recorder.url.replace("127.0.0.1", "two.example")
    assert jwks() == fetch(url, timeout_s=2, max_bytes=1 << 20)
    assert 200 == post_set(stream(endpoint_url=url), b"a.b.c", 2, allow_private=True)[0]
