"""A small OpenID Connect relying party for Keycloak's back-channel logout, in a thread: it
records each logout token Keycloak POSTs to it (``logout_token``, form encoded), with the
moment it arrived and the ``sid`` and ``sub`` in its payload. Plain standard library: no
Sessionwarden code is in its request path, so what it receives is what Keycloak sent.

The payload is read without checking the signature: the RP stands for a client application in
the tests, and only Keycloak can reach it (127.0.0.1, a free port)."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class LogoutToken:
    at: float  # wall-clock time it arrived
    sid: str | None
    sub: str | None
    claims: dict[str, Any]


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    doc = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(doc, dict):
        raise ValueError("not a JWT payload")
    return doc


class RelyingParty:
    """``url`` is its back-channel logout URI (``/backchannel-logout``); ``received`` lists
    the logout tokens in order; ``logged_out(sid)`` says when one named that session."""

    path = "/backchannel-logout"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.received: list[LogoutToken] = []
        self.refused = 0  # requests that were not a back-channel logout token
        self._lock = threading.Lock()
        rp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != rp.path or not 0 < length <= MAX_BODY:
                    rp._refuse(self)
                    return
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("ascii", "replace"))
                try:
                    claims = _payload(form["logout_token"][0])
                    if BACKCHANNEL_EVENT not in claims.get("events", {}):
                        raise ValueError("no back-channel logout event")
                except (KeyError, IndexError, ValueError, TypeError):
                    rp._refuse(self)
                    return
                token = LogoutToken(time.time(), claims.get("sid"), claims.get("sub"), claims)
                with rp._lock:
                    rp.received.append(token)
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _refuse(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.refused += 1
        handler.send_response(400)
        handler.end_headers()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def logged_out(self, sid: str) -> float | None:
        """When the first logout token naming ``sid`` arrived, or None."""
        with self._lock:
            return next((t.at for t in self.received if t.sid == sid), None)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
