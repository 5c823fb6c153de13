"""The product's HTTP servers against callers that hold connections open: one that sends
nothing, a request head or a body a byte at a time. Real sockets on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sessionwarden.ops.bodies import BodyRefused, read_body
from sessionwarden.ops.serving import LIMITS, BoundedH11Protocol, limits
from sessionwarden.testing.serve import ServerThread


async def echo(request: Request) -> Response:
    try:
        body = await read_body(request, 100, timeout_s=0.5)
    except BodyRefused as exc:
        return Response(exc.message, exc.status)
    return Response(body)


APP = Starlette(routes=[Route("/", echo, methods=["POST"])])


def closed_within(conn: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``conn`` (reading what it sent), None if it did not."""
    conn.settimeout(0.1)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if conn.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def trickle(conn: socket.socket, data: bytes, every_s: float) -> Callable[[], None]:
    def send() -> None:
        for byte in data:
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(every_s)

    return send


def test_every_server_of_the_product_runs_the_bounded_protocol() -> None:
    """The services and the test harness serve with the same options."""
    assert BoundedH11Protocol is LIMITS["http"]


@pytest.mark.parametrize("head", [b"", b"POST / HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "part"])
def test_a_connection_without_a_whole_request_head_is_closed(head: bytes) -> None:
    """uvicorn alone keeps such a connection for ever: enough of them take every descriptor."""
    with ServerThread(APP, **limits(0.5)) as server:
        conn = socket.create_connection(("127.0.0.1", server.port))
        conn.sendall(head)
        assert closed_within(conn, 3.0) is not None
        conn.close()


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off() -> None:
    """Each byte arrives well within any per-read timeout; the head as a whole does not."""
    with ServerThread(APP, **limits(0.5)) as server:
        conn = socket.create_connection(("127.0.0.1", server.port))
        head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
        threading.Thread(target=trickle(conn, head, 0.05), daemon=True).start()
        assert closed_within(conn, 3.0) is not None
        conn.close()


def served_once(port: int) -> socket.socket:
    """A connection that had one request answered (and kept alive)."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    conn.settimeout(2)
    answer = b""
    while not answer.endswith(b"\r\n\r\nhi"):
        answer += conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
    return conn


def test_a_kept_alive_connection_must_send_its_next_head_in_time_too() -> None:
    """After an answer the next request's head is due as the first was."""
    with ServerThread(APP, **limits(0.5)) as server:
        conn = served_once(server.port)
        conn.sendall(b"POST / HTTP/1.1\r\n")  # keeps the keep-alive timer from closing it
        assert closed_within(conn, 3.0) is not None
        conn.close()


def test_a_good_request_is_served_and_a_slow_body_is_answered_408() -> None:
    """A body a byte every 0.05 s passes no per-read timeout; read_body bounds it in all."""
    with ServerThread(APP, **limits(5)) as server:
        conn = served_once(server.port)
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 90\r\n\r\n")
        threading.Thread(target=trickle(conn, b"x" * 90, 0.05), daemon=True).start()
        started = time.monotonic()
        assert conn.recv(4096).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 1.5
        conn.close()
