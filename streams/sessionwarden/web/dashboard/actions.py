"""The dashboard's revocation actions: end one session, or every session of a user.

Off unless ``dashboard_operator`` names the operator the commands carry (the enforcer applies
only its allowed operators', ``SESSIONWARDEN_OPERATORS``). ``POST /api/revoke`` takes
``{"tenant", "user_id", "session_id"?, "reason_admin"}`` as JSON and writes one operator
command to the commands topic; the enforcer applies it and audits it like any other
(`sessionwarden revoke`). The page asks the person to confirm first.

Cross-site request forgery: the login cookie is SameSite=Strict, and a request authenticated by
it must also come from the dashboard's own origin (``Origin`` equal to its host) and carry the
page's token (``X-Sessionwarden-CSRF``, an HMAC of the access token that only an authenticated
same-origin read of ``/api/actions`` returns), as JSON (a cross-site form cannot send that
without a preflight). A script that sends the access token as a bearer header carries no
ambient credential and needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sessionwarden.contracts.commands import OperatorCommand
from sessionwarden.contracts.validation import error_lines
from sessionwarden.ops.bodies import BodyRefused, read_body

log = logging.getLogger(__name__)

CSRF_HEADER = "x-sessionwarden-csrf"
MAX_BODY = 4096
_FIELDS = {"tenant", "user_id", "session_id", "reason_admin"}


class CommandSink(Protocol):
    """Writes one operator command (raises on failure)."""

    def send(self, command: OperatorCommand) -> None: ...


def csrf_token(token: str) -> str:
    """The page's request token: fixed per access token, readable only with it."""
    return hmac.new(token.encode(), b"dashboard-csrf", hashlib.sha256).hexdigest()


class RevokeActions:
    """The two routes: ``GET /api/actions`` (the page's token) and ``POST /api/revoke``."""

    def __init__(
        self,
        sink: CommandSink,
        operator: str,
        token: str,
        hasher: Callable[[str], str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sink = sink
        self._operator = operator
        self._csrf = csrf_token(token)
        self._hasher = hasher
        self._clock = clock

    async def describe(self, request: Request) -> Response:
        return JSONResponse(
            {"enabled": True, "csrf": self._csrf, "operator": self._operator},
            headers={"cache-control": "no-store"},
        )

    async def revoke(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        try:
            body = await read_body(request, MAX_BODY)
        except BodyRefused as exc:
            return _error(exc.status, exc.message)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "the body is not JSON")
        if not isinstance(doc, dict) or not set(doc) <= _FIELDS:
            return _error(422, f"expected an object with {', '.join(sorted(_FIELDS))}")
        user, session = doc.get("user_id"), doc.get("session_id")
        if user is None:
            return _error(422, "user_id: Field required (the session's user, or the user)")
        try:
            command = OperatorCommand(
                command_id=uuid.uuid4(),
                issued_at=self._clock(),
                tenant=doc.get("tenant"),
                scope="session" if session else "user",
                session_id=session or None,
                user_id=user,
                operator=self._operator,
                reason_admin=doc.get("reason_admin"),
            )
        except ValidationError as exc:
            return _error(422, "; ".join(error_lines(exc, root="request")))
        await run_in_threadpool(self._sink.send, command)
        log.warning(
            "dashboard sent an operator command",
            extra={
                "command_id": str(command.command_id),
                "operator": self._operator,
                "tenant": command.tenant,
                "user_id": command.user_id,
                "session": None if session is None else self._hasher(str(session)),
                "scope": command.scope,
                "client": request.client.host if request.client else None,
            },
        )
        return JSONResponse(
            {"command_id": str(command.command_id), "scope": command.scope}, status_code=202
        )

    def _refusal(self, request: Request) -> Response | None:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send JSON")
        if request.headers.get("authorization", "").lower().startswith("bearer "):
            return None  # no ambient credential: not forgeable across sites
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin != own:
            return _error(403, "cross-origin request refused")
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), self._csrf.encode()):
            return _error(403, "missing or wrong request token")
        return None


def _error(status: int, message: str) -> Response:
    return JSONResponse(
        {"error": message}, status_code=status, headers={"cache-control": "no-store"}
    )


class KafkaCommandSink:
    """Writes commands with an idempotent producer (acks=all, murmur2 like the publisher), keyed
    by the user; waits for the broker's acknowledgement."""

    def __init__(self, client_config: dict[str, Any], topic: str) -> None:
        from confluent_kafka import Producer

        self._topic = topic
        self._producer = Producer(
            {
                **client_config,
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "log_level": 4,
            }
        )

    def send(self, command: OperatorCommand) -> None:
        from sessionwarden.contracts.codec import encode

        errors: list[str] = []

        def delivered(error: Any, _msg: Any) -> None:
            if error is not None:
                errors.append(str(error))

        assert command.user_id is not None  # the dashboard always names the user
        self._producer.produce(
            self._topic, encode(command), command.user_id.encode(), on_delivery=delivered
        )
        if self._producer.flush(10) or errors:
            raise RuntimeError(f"the command was not written: {'; '.join(errors) or 'timeout'}")


__all__ = ["CSRF_HEADER", "CommandSink", "KafkaCommandSink", "RevokeActions", "csrf_token"]
