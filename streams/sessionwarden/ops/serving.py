"""Serving an ASGI app with uvicorn to callers that may be hostile: the bounds uvicorn lacks.

uvicorn keeps a connection open for ever while it sends nothing, or sends its request line and
headers a byte at a time: a few thousand such connections use up the process's file
descriptors, and the endpoint then takes no connection at all. With :data:`LIMITS` (the
uvicorn options every server of the product runs with, and the tests serve with) a connection
must send a whole request head within ``REQUEST_HEAD_TIMEOUT_S`` of opening, or of the answer
to its previous request, or it is closed: holding connections then costs the caller a new one
every few seconds, as at any server. (No cap on connections: uvicorn counts idle ones against
``limit_concurrency`` too, so a cap would let fewer of them refuse everyone; a cap per caller
belongs in the proxy in front.) A body is bounded in size and time where it is read
(:mod:`sessionwarden.ops.bodies`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_HEAD_TIMEOUT_S: Final = 10.0


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request head is late."""

    head_timeout_s: float = REQUEST_HEAD_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request head is in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def limits(head_timeout_s: float = REQUEST_HEAD_TIMEOUT_S) -> dict[str, Any]:
    """uvicorn.Config options with the request head due within ``head_timeout_s``."""
    if head_timeout_s == BoundedH11Protocol.head_timeout_s:
        return {"http": BoundedH11Protocol}
    protocol = type("BoundedH11Protocol", (BoundedH11Protocol,), {"head_timeout_s": head_timeout_s})
    return {"http": protocol}


LIMITS: Final[dict[str, Any]] = limits()
"""uvicorn.Config options of every server of the product."""
