"""The gate at its connection cap: the refused client reads its 503, whatever it sent first."""

from __future__ import annotations

import socket
import time

from sessionwarden.gate.server import _Handler, _Server


def test_a_refused_connection_reads_its_busy_answer_even_when_its_request_came_first() -> None:
    """Closing a socket with unread bytes makes the kernel reset it, and the client loses the
    503 (seen as `Transport endpoint is not connected` on its next call)."""
    server = _Server(("127.0.0.1", 0), _Handler, 0)  # a cap of 0: every connection is refused
    try:
        client = socket.create_connection(server.server_address[:2], timeout=5)
        client.sendall(b"GET / HTTP/1.1\r\nHost: gate\r\n\r\n")
        time.sleep(0.2)  # the request is in the gate's receive buffer before it is accepted
        conn, address = server.socket.accept()
        server.process_request(conn, address)
        client.shutdown(socket.SHUT_WR)
        answer = client.recv(4096)
        client.close()
    finally:
        server.server_close()
    assert answer.startswith(b"HTTP/1.1 503 ") and b"X-Sessionwarden-Reason: busy" in answer
