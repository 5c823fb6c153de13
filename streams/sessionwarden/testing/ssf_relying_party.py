"""A relying party that learns of revocations only through Shared Signals: it serves
``GET /api/data`` to a session (header ``X-Session-Id``) until a verified CAEP
``session-revoked`` names it, then answers 401.

No Sessionwarden code takes part in its decisions. It checks each SET itself, from the RFCs:
compact JWS, ``alg`` RS256, ``typ`` ``secevent+jwt``, the signature with the key of its ``kid``
from the transmitter's JWKS (fetched over HTTP, fetched again for an unknown ``kid``), ``iss``,
``aud``, one ``jti`` once; the session is the keyed hash (BLAKE2b, the deployment's log salt)
the transmitter names sessions by, which the party computes for the sessions it serves. It gets
SETs by push (RFC 8935, ``POST /ssf/events`` with its bearer token) or by polling
(RFC 8936, :meth:`RelyingParty.poll_from`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sessionwarden.testing.ssf import reply

SESSION_HEADER = "X-Session-Id"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
MAX_BODY = 65_536


class Unaccepted(Exception):
    """A SET this party does not take: the RFC 8935 error code and why."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RelyingParty:
    """The party on 127.0.0.1 (a free port) in a thread; ``refused_at`` maps each session
    hash it has refused since to when its SET was taken."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        salt: str,
        push_token: str = "",
        fetch_jwks: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.issuer, self.audience, self.push_token = issuer, audience, push_token
        self._fetch_jwks = fetch_jwks or self._jwks_over_http
        self._salt = salt.encode()[:64]
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.refused_at: dict[str, float] = {}
        party = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                session = self.headers.get(SESSION_HEADER, "")
                ok = self.path == "/api/data" and session and not party.refuses(session)
                self._answer(200 if ok else 401, b'{"data": "statement"}' if ok else b"")

            def do_POST(self) -> None:
                if (
                    self.path != "/ssf/events"
                    or not party.push_token
                    or not hmac.compare_digest(
                        self.headers.get("Authorization", ""), f"Bearer {party.push_token}"
                    )
                ):
                    self._answer(401, b'{"err": "authentication_failed"}')
                    return
                size = int(self.headers.get("Content-Length", "0") or 0)
                if size > MAX_BODY:
                    self._answer(413, b'{"err": "invalid_request"}')
                    return
                try:
                    party.take(self.rfile.read(size))
                except Unaccepted as e:
                    self._answer(400, orjson.dumps({"err": e.code, "description": str(e)}))
                    return
                except (OSError, orjson.JSONDecodeError):  # no keys now: push it again later
                    self._answer(503, b"")
                    return
                self._answer(202, b"")

            def _answer(self, status: int, body: bytes) -> None:
                reply(self, status, body)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def session_hash(self, session_id: str) -> str:
        return hashlib.blake2b(session_id.encode(), key=self._salt, digest_size=12).hexdigest()

    def refuses(self, session_id: str) -> bool:
        return self.session_hash(session_id) in self.refused_at

    def take(self, token: bytes) -> None:
        """Verify one SET and, for a session-revoked, refuse its session; Unaccepted if not."""
        parts = token.decode("ascii", "replace").split(".")
        if len(parts) != 3:
            raise Unaccepted("invalid_request", "not a compact JWS")
        try:
            header, claims = orjson.loads(_b64(parts[0])), orjson.loads(_b64(parts[1]))
            signature = _b64(parts[2])
        except (ValueError, orjson.JSONDecodeError) as e:
            raise Unaccepted("invalid_request", "unreadable token") from e
        if header.get("alg") != "RS256" or header.get("typ") != "secevent+jwt":
            raise Unaccepted("invalid_request", "only RS256 secevent+jwt is accepted")
        key = self._key(str(header.get("kid", "")))
        try:
            signed = f"{parts[0]}.{parts[1]}".encode()
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as e:
            raise Unaccepted("invalid_key", "bad signature") from e
        if claims.get("iss") != self.issuer:
            raise Unaccepted("invalid_issuer", "another issuer")
        audience = claims.get("aud")
        if self.audience not in (audience if isinstance(audience, list) else [audience]):
            raise Unaccepted("invalid_audience", "another audience")
        jti = str(claims.get("jti", ""))
        with self._lock:
            if not jti or jti in self._seen:
                raise Unaccepted("invalid_request", "no jti, or one seen before")
            self._seen.add(jti)
            session = (claims.get("sub_id") or {}).get("session") or {}
            if SESSION_REVOKED in (claims.get("events") or {}) and session.get("id"):
                self.refused_at.setdefault(str(session["id"]), time.time())

    def _key(self, kid: str) -> rsa.RSAPublicKey:
        if kid not in self._keys:
            jwks = self._fetch_jwks()  # OSError (URLError) when it cannot: try again later
            for jwk in jwks.get("keys", []):
                if jwk.get("kty") == "RSA":
                    numbers = rsa.RSAPublicNumbers(
                        int.from_bytes(_b64(jwk["e"]), "big"), int.from_bytes(_b64(jwk["n"]), "big")
                    )
                    self._keys[str(jwk.get("kid", ""))] = numbers.public_key()
        if kid not in self._keys:
            raise Unaccepted("invalid_key", "a key the JWKS lacks")
        return self._keys[kid]

    def _jwks_over_http(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.issuer}/ssf/jwks", timeout=10) as answer:
            found: dict[str, Any] = orjson.loads(answer.read(MAX_BODY))
        return found

    def poll_from(self, url: str, token: str) -> None:
        """Poll ``url`` (RFC 8936, long polls) in a thread until :meth:`close`, acknowledging
        what it took and reporting what it refused."""
        threading.Thread(target=self._poll, args=(url, token), daemon=True).start()

    def _poll(self, url: str, token: str) -> None:
        ack: list[str] = []
        errors: dict[str, dict[str, str]] = {}
        while not self._stop.is_set():
            body = {"maxEvents": 100, "returnImmediately": False, "ack": ack, "setErrs": errors}
            request = urllib.request.Request(url, data=orjson.dumps(body), method="POST",
                headers={"Authorization": f"Bearer {token}",
                         "Content-Type": "application/json"})  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    sets = orjson.loads(answer.read()).get("sets", {})
            except (urllib.error.URLError, OSError, orjson.JSONDecodeError):
                self._stop.wait(0.5)
                continue
            ack, errors = [], {}
            for jti, set_token in sets.items():
                try:
                    self.take(set_token.encode())
                    ack.append(jti)
                except Unaccepted as e:
                    errors[jti] = {"err": e.code, "description": str(e)}
                except (OSError, orjson.JSONDecodeError):
                    pass  # no keys now: neither acknowledged nor refused, it comes again

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
