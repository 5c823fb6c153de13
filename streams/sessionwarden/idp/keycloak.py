"""Keycloak's admin REST API, as far as the actuator needs it: a service account's token
(client credentials) and ``DELETE /admin/realms/{realm}/sessions/{id}``.

Keycloak ends the session (its refresh tokens then get ``invalid_grant``, introspection says
``active: false``) and sends its own back-channel logout to every client of the session that
registered one, before it answers 204; a session it does not hold answers 404. The call needs
the ``manage-users`` role of the realm's ``realm-management`` client (``view-users`` gets 403):
docs/KEYCLOAK.md.

HTTP goes through a :data:`Transport` (one request in, status and body out; None when no
answer came), so the client is unit-tested with a fake one beside the real
:func:`urllib_transport`. Nothing here logs: the secret is only ever in a request body, and an
answer's text is never put in an error (it may echo what was sent)."""

from __future__ import annotations

import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from sessionwarden.config.settings import KeycloakSettings
from sessionwarden.idp.retry import Verdict, classify
from sessionwarden.oauth import TokenAnswerError, good_until, parse_token_answer, token_request
from sessionwarden.outbound import exchange

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None

    def __repr__(self) -> str:  # the body may hold the client secret, a header the token
        return f"HttpRequest({self.method} {self.url})"


@dataclass(frozen=True)
class HttpResponse:
    status: int | None
    """None: no answer (connection refused or reset, timed out)."""
    body: bytes = b""


Transport = Callable[[HttpRequest], HttpResponse]


def urllib_transport(timeout_s: float, ca_file: Path | None = None) -> Transport:
    """The real transport: one connection per request, ``timeout_s`` in all, no redirect to
    another origin (:func:`sessionwarden.outbound.fetch`)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def send(request: HttpRequest) -> HttpResponse:
        req = urllib.request.Request(
            request.url, data=request.body, headers=request.headers, method=request.method
        )
        try:
            status, body = exchange(
                req, timeout_s=timeout_s, max_bytes=MAX_BODY_BYTES, context=context
            )
            return HttpResponse(status, body[:MAX_BODY_BYTES])
        except urllib.error.HTTPError as exc:
            with exc:
                return HttpResponse(exc.code, exc.read(MAX_BODY_BYTES))
        except (OSError, ValueError):  # URLError, timeouts, resets; a malformed answer
            return HttpResponse(None)

    return send


@dataclass(frozen=True)
class Answer:
    """What one attempt to end a session came to: the verdict, the status behind it (None: no
    answer) and, for a failure, a short reason fit for a log line."""

    verdict: Verdict
    status: int | None
    reason: str = ""


class KeycloakAdmin:
    """Ends sessions; thread-safe (the actuator calls it from several threads). Tokens are
    cached per realm of the service account until most of their lifetime has passed."""

    def __init__(
        self,
        settings: KeycloakSettings,
        transport: Transport,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.url:
            raise ValueError("keycloak_url is not set")
        if settings.client_secret is None:
            raise ValueError("keycloak_client_secret_file is not set")
        self._base = settings.url.rstrip("/")
        self._client_id = settings.client_id
        self._secret = settings.client_secret
        self._admin_realm = settings.admin_realm
        self._send = transport
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def end_session(self, realm: str, session_id: str) -> Answer:
        """One attempt: ``DELETE /admin/realms/{realm}/sessions/{id}`` with a token (a new one
        after a 401)."""
        token_realm = self._admin_realm or realm
        token = self._token(token_realm)
        if isinstance(token, Answer):
            return token
        url = f"{self._base}/admin/realms/{_segment(realm)}/sessions/{_segment(session_id)}"
        answer = self._send(HttpRequest("DELETE", url, {"Authorization": f"Bearer {token}"}))
        verdict = classify(answer.status)
        if answer.status in (401, 403):  # a role granted since shows in a new token
            self._forget(token_realm, token)
        reason = "" if verdict.final and verdict is not Verdict.REJECTED else _reason(answer)
        return Answer(verdict, answer.status, reason)

    def check(self, realm: str) -> str | None:
        """Get the service account's token for ``realm`` ahead of the first revocation (which
        then pays for no token request); the reason it failed, or None."""
        token = self._token(self._admin_realm or realm)
        return token.reason if isinstance(token, Answer) else None

    def _token(self, realm: str) -> str | Answer:
        now = self._clock()
        with self._lock:
            cached = self._tokens.get(realm)
        if cached is not None and cached[1] > now:
            return cached[0]
        url = f"{self._base}/realms/{_segment(realm)}/protocol/openid-connect/token"
        body = token_request(self._client_id, self._secret)
        answer = self._send(
            HttpRequest("POST", url, {"Content-Type": "application/x-www-form-urlencoded"}, body)
        )
        if answer.status != 200:
            # A refused secret or client is an operator's fix: asked again, never dropped.
            return Answer(Verdict.AGAIN, answer.status, "token: " + _reason(answer))
        try:
            token, lifetime = parse_token_answer(answer.body)
        except TokenAnswerError:
            return Answer(Verdict.AGAIN, answer.status, "token: malformed answer")
        with self._lock:
            self._tokens[realm] = (token, good_until(now, lifetime))
        return token

    def _forget(self, realm: str, token: str) -> None:
        with self._lock:
            if self._tokens.get(realm, ("", 0.0))[0] == token:
                del self._tokens[realm]


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _reason(answer: HttpResponse) -> str:
    """A short reason: the status and Keycloak's ``error`` code, never free text."""
    if answer.status is None:
        return "no answer"
    try:
        doc = orjson.loads(answer.body) if answer.body else None
    except orjson.JSONDecodeError:
        doc = None
    code = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(code, str) and code.replace("_", "").isalnum() and len(code) <= 64:
        return f"HTTP {answer.status} {code}"
    return f"HTTP {answer.status}"
