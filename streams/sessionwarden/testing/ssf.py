"""Shared Signals parts for the tests and the benchmark: a push receiver that records what it
is sent (RFC 8935), a small client of the transmitter's API, and a transmitter's key and token
file."""

from __future__ import annotations

import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sessionwarden.ssf.tokens import read_unverified
from sessionwarden.ssf.transmitter.auth import token_hash


@dataclass(frozen=True)
class Push:
    """One POST the receiver got: its path, when, the token and its jti, what it answered."""

    path: str
    at: float
    token: bytes
    jti: str
    answered: int


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    """Answer one request of a test server: ``status`` and ``body``, nothing else."""
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class PushReceiver:
    """An RFC 8935 push endpoint on 127.0.0.1 in a thread. Each path answers as ``modes``
    says: ``ok`` (202), ``fail`` (503), ``hang`` (no answer until ``release``), ``refuse``
    (400 invalid_request). Every POST is recorded in ``pushes``."""

    def __init__(self) -> None:
        self.modes: dict[str, str] = {}
        self.pushes: list[Push] = []
        self.hanging = 0
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("content-length", "0"))
                token = self.rfile.read(size)
                mode = receiver.modes.get(self.path, "ok")
                if mode == "hang":
                    receiver.hanging += 1
                    receiver._release.wait(60)
                    receiver.hanging -= 1
                    return
                status = {"ok": 202, "fail": 503, "refuse": 400}[mode]
                try:
                    jti = str(read_unverified(token)[1].get("jti"))
                except Exception:
                    jti = ""
                receiver.pushes.append(Push(self.path, time.time(), token, jti, status))
                body = b""
                if status == 400:
                    body = b'{"err":"invalid_request","description":"refused by the test"}'
                reply(self, status, body)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str) -> list[Push]:
        return [p for p in self.pushes if p.path == path and p.answered == 202]

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def write_key_and_tokens(directory: Path, client: str = "rp") -> tuple[Path, Path, str]:
    """An RSA 2048 key file, a token file with one client's hashed token (both scopes), and
    that client's token."""
    key = rsa.generate_private_key(65537, 2048)
    key_file = directory / "ssf-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    token = secrets.token_urlsafe(32)
    token_file = directory / "ssf-tokens"
    token_file.write_text(f"{client} {token_hash(token)} ssf.manage,ssf.read\n")
    return key_file, token_file, token


class SsfClient:
    """Calls the transmitter's API with a bearer token; answers are (status, JSON or None)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base.rstrip("/"), token

    def call(self, method: str, path: str, doc: Any = None, timeout: float = 30) -> tuple[int, Any]:
        data = None if doc is None else orjson.dumps(doc)
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        return status, (orjson.loads(body) if body else None)

    def create_push(self, url: str, events: list[str], authorization: str = "") -> str:
        """A push stream to ``url``; ``authorization`` is the header value the endpoint wants."""
        delivery = {"method": "urn:ietf:rfc:8935", "endpoint_url": url}
        if authorization:
            delivery["authorization_header"] = authorization
        status, doc = self.call(
            "POST", "/ssf/streams", {"delivery": delivery, "events_requested": events}
        )
        assert 201 == status, doc
        return str(doc["stream_id"])

    def create_poll(self, events: list[str]) -> str:
        status, doc = self.call(
            "POST",
            "/ssf/streams",
            {"delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": events},
        )
        assert 201 == status, doc
        return str(doc["stream_id"])

    def poll(self, stream_id: str, **request: Any) -> dict[str, Any]:
        status, doc = self.call("POST", f"/ssf/poll/{stream_id}", request)
        assert 200 == status, doc
        return dict(doc)
