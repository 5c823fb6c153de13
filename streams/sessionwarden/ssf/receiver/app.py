"""The RFC 8935 push endpoint: ``POST /ssf/push`` with one SET as the body.

Every request must carry ``Authorization: Bearer <token>`` where the token is one push
transmitter's (``push_token_file``); the token says which transmitter is speaking, so one
transmitter can never deliver under another's trust. Anything without one, on any path, is
401 ``authentication_failed``. The body must be ``application/secevent+jwt`` and at most
``max_body_bytes`` (413 beyond, read no further) and arrive within
:data:`~sessionwarden.ops.bodies.BODY_TIMEOUT_S` (408 after). Answers (RFC 8935 section 2.2-2.3):

* ``202`` and no body: the SET is taken (its event acknowledged by the broker) or ignored;
* ``400`` with ``{"err", "description"}``: refused, with its RFC 8935 code;
* ``503`` with ``Retry-After``: not taken now (keys not loadable, the broker), send it again.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import orjson
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sessionwarden.ops.bodies import BodyRefused, read_body
from sessionwarden.ssf.errors import AUTHENTICATION_FAILED, INVALID_REQUEST
from sessionwarden.ssf.receiver.intake import Replayed
from sessionwarden.ssf.receiver.refusal import Refused, Unavailable
from sessionwarden.ssf.receiver.taking import Receiving, take
from sessionwarden.ssf.vocabulary import SET_MEDIA_TYPE

PUSH_PATH = "/ssf/push"


def _error(refused: Refused) -> Response:
    headers = {"Cache-Control": "no-store"}
    if refused.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return Response(
        orjson.dumps(refused.body()), refused.status, headers, media_type="application/json"
    )


class _Authenticated:
    """ASGI middleware: the transmitter named by the request's bearer token goes into
    ``scope["state"]["transmitter"]``; a request without a known token gets 401, whatever
    its path."""

    def __init__(self, app: ASGIApp, tokens: Mapping[str, str], refused: Counter) -> None:
        self.app = app
        self.tokens = [(token.encode(), name) for token, name in tokens.items()]
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
        found = None
        for token, transmitter in self.tokens:  # every token compared, in constant time
            if hmac.compare_digest(given, token):
                found = transmitter
        if found is None:
            self.refused.labels(AUTHENTICATION_FAILED).inc()
            refusal = Refused(
                AUTHENTICATION_FAILED, "a push transmitter's bearer token is required", 401
            )
            await _error(refusal)(scope, receive, send)
            return
        scope.setdefault("state", {})["transmitter"] = found
        await self.app(scope, receive, send)


async def _token_of(request: Request, limit: int) -> str:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != SET_MEDIA_TYPE:
        raise Refused(INVALID_REQUEST, f"the body must be {SET_MEDIA_TYPE}")
    try:
        body = await read_body(request, limit)
    except BodyRefused as exc:
        raise Refused(INVALID_REQUEST, exc.message, exc.status) from None
    try:
        return body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise Refused(INVALID_REQUEST, "the body is not a compact JWS") from None


def push_app(ctx: Receiving, tokens: Mapping[str, str], max_body_bytes: int) -> ASGIApp:
    """The push endpoint; ``tokens`` maps each push transmitter's bearer token to its name."""

    async def push(request: Request) -> Response:
        transmitter: str = request.state.transmitter
        try:
            token = await _token_of(request, max_body_bytes)
        except Refused as refused:
            ctx.metrics.requests_refused.labels(refused.code).inc()
            return _error(refused)
        try:
            await take(ctx, transmitter, token)
        except Replayed as refused:
            ctx.metrics.outcome(transmitter, "refused", refused.code)
            return _error(refused)
        except Refused as refused:  # counted and logged by take
            return _error(refused)
        except Unavailable:
            return Response(b"", 503, {"Retry-After": "1", "Cache-Control": "no-store"})
        return Response(b"", 202, {"Cache-Control": "no-store"})

    app = Starlette(routes=[Route(PUSH_PATH, push, methods=["POST"])])
    return _Authenticated(app, tokens, ctx.metrics.requests_refused)
