"""A small Shared Signals transmitter for the tests: it publishes its metadata and JWKS, signs
SETs with the product's SET encoder, pushes them (RFC 8935) and serves them to a poller
(RFC 8936), recording every acknowledgement and error it is sent.

Written from the RFCs; it stands beside the independent transmitters (Keycloak's), never
instead of them.
"""

from __future__ import annotations

import hmac
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sessionwarden.ssf.tokens import SetSigner, encode_set, jwks, signer_for
from sessionwarden.ssf.vocabulary import POLL_DELIVERY, PUSH_DELIVERY, SET_MEDIA_TYPE, SPEC_VERSION


def new_signer() -> SetSigner:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return signer_for(pem)


class SsfTransmitterStub:
    """Serves ``/.well-known/ssf-configuration``, ``/jwks`` and ``POST /poll`` (bearer
    ``poll_token``) on 127.0.0.1; ``queue`` adds a SET for the poller. With ``trickle_jwks``
    its ``/jwks`` answer never ends: a byte every 0.2 s (a slow or hostile key endpoint);
    ``jwks_asked`` is set once its keys were asked for."""

    def __init__(self, poll_token: str, key_id: str = "k1", trickle_jwks: bool = False) -> None:
        self.trickle_jwks = trickle_jwks
        self.jwks_asked = threading.Event()
        self._closing = threading.Event()
        self.signer = new_signer()
        self.key_id = key_id
        self.poll_token = poll_token
        self.pending: dict[str, str] = {}
        self.acks: list[str] = []
        self.errors: dict[str, dict[str, str]] = {}
        self.polls = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.base
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> SsfTransmitterStub:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def sign(self, claims: Mapping[str, Any], signer: SetSigner | None = None) -> str:
        return encode_set(claims, signer or self.signer, self.key_id).decode()

    def unsigned(self, claims: Mapping[str, Any]) -> str:
        """An Unsecured JWT (``alg: none``): what a forger without the key can make."""
        return encode_set(claims, None).decode()

    def claims(
        self, event_type: str, subject: dict[str, Any], audience: str, iat: float,
        payload: dict[str, Any] | None = None, **extra: Any,
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "iss": self.issuer, "aud": audience, "iat": int(iat), "jti": uuid.uuid4().hex,
            "sub_id": subject, "events": {event_type: payload or {"event_timestamp": int(iat)}},
            **extra,
        }  # fmt: skip

    def queue(self, token: str, jti: str | None = None) -> str:
        from sessionwarden.ssf.tokens import read_unverified

        name = jti or str(read_unverified(token)[1]["jti"])
        with self._lock:
            self.pending[name] = token
        return name

    def metadata(self) -> dict[str, Any]:
        return {
            "spec_version": SPEC_VERSION,
            "issuer": self.issuer,
            "jwks_uri": f"{self.base}/jwks",
            "delivery_methods_supported": [PUSH_DELIVERY, POLL_DELIVERY],
        }

    def _poll(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.polls += 1
            for jti in body.get("ack", []):
                self.acks.append(jti)
                self.pending.pop(jti, None)
            for jti, err in body.get("setErrs", {}).items():
                self.errors[jti] = err
                self.pending.pop(jti, None)
            limit = int(body.get("maxEvents", 100))
            sets = dict(list(self.pending.items())[:limit])
            return {"sets": sets, "moreAvailable": len(self.pending) > len(sets)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/jwks":
                    stub.jwks_asked.set()
                    if stub.trickle_jwks:
                        self._trickle()
                    else:
                        self._send(200, jwks(stub.signer, stub.key_id))
                elif self.path == "/.well-known/ssf-configuration":
                    self._send(200, stub.metadata())
                else:
                    self._send(404, {})

            def do_POST(self) -> None:
                given = self.headers.get("Authorization", "")
                if self.path != "/poll":
                    self._send(404, {})
                elif not hmac.compare_digest(given, f"Bearer {stub.poll_token}"):
                    self._send(401, {"err": "authentication_failed"})
                else:
                    length = int(self.headers.get("Content-Length", "0"))
                    self._send(200, stub._poll(orjson.loads(self.rfile.read(length))))

            def _trickle(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(1 << 20))
                self.end_headers()
                try:
                    while not stub._closing.wait(0.2):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                except OSError:
                    pass  # the reader gave up

            def _send(self, status: int, doc: Any) -> None:
                body = orjson.dumps(doc)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def push(url: str, token: str, set_token: str, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    """POST one SET as RFC 8935 says; the status and the JSON error body (empty on 202)."""
    request = urllib.request.Request(
        url,
        data=set_token.encode(),
        method="POST",
        headers={
            "Content-Type": SET_MEDIA_TYPE,
            "Accept": "application/json",
            "Authorization": f"Bearer {token}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            return response.status, orjson.loads(body) if body else {}
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, orjson.loads(body) if body else {}
