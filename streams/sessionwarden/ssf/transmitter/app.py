"""The transmitter's HTTP API on Starlette: metadata, keys, stream management and polling.

Only the metadata (``/.well-known/ssf-configuration``) and the JWK Set are public, as SSF 1.0
section 7 makes them; every other route needs a bearer token with ``ssf.read`` (reading a
stream, its status, polling) or ``ssf.manage`` (everything else), and a client sees only the
streams it created (another's is a 404, never a 403, so ids cannot be probed). Bodies are at
most ``MAX_BODY`` bytes, arriving within :data:`~sessionwarden.ops.bodies.BODY_TIMEOUT_S`,
parsed strictly; a refusal is a JSON error with a clear description.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sessionwarden.ops.bodies import BodyRefused, read_body
from sessionwarden.ssf.errors import set_error
from sessionwarden.ssf.subjects import subject_problem
from sessionwarden.ssf.tokens import jwks
from sessionwarden.ssf.transmitter.auth import MANAGE, READ, IntrospectionBusy, Principal
from sessionwarden.ssf.transmitter.delivery import PollRequestError, parse_poll
from sessionwarden.ssf.transmitter.sets import SetMaker
from sessionwarden.ssf.transmitter.store import NoSuchStream, Queued, Store
from sessionwarden.ssf.transmitter.streams import (
    MAX_SUBJECTS,
    Stream,
    StreamError,
    changed,
    new_stream,
    parse_request,
    retention_of,
    status_view,
    stream_view,
    verification_state,
    with_status,
)
from sessionwarden.ssf.vocabulary import DELIVERY_METHODS, POLL_DELIVERY, SPEC_VERSION

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
POLL_STEP_S = 0.05


@dataclass(frozen=True)
class AppContext:
    """What the routes work with (collaborators travel together)."""

    store: Store
    maker: SetMaker
    authorize: Callable[[str | None], Principal | None]
    clock: Callable[[], float]
    on_change: Callable[[str], None]
    """Called with a stream id after its configuration, status or queue changed."""
    key_id: str | None
    default_subjects: str
    keep_s: float
    poll_wait_s: float
    max_streams: int
    allow_http_push: bool
    allow_private_push: bool = False
    """Push endpoints on loopback and private addresses (a name is checked at each push)."""
    max_streams_per_client: int = 10
    """Streams one client may hold, so that one cannot take every slot of ``max_streams``."""
    max_subjects: int = MAX_SUBJECTS
    stats: dict[str, float] = field(default_factory=dict)
    """Counters of the API's outcomes (polled, acknowledged, refused by a poller)."""


class _Refused(Exception):
    def __init__(
        self, status: int, error: str, description: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}


def _count(stats: dict[str, float], key: str, n: int = 1) -> None:
    stats[key] = stats.get(key, 0) + n


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status, media_type="application/json")


def metadata(issuer: str, default_subjects: str) -> dict[str, Any]:
    """The transmitter configuration metadata (SSF 1.0 section 7.1)."""
    base = issuer.rstrip("/")
    return {
        "spec_version": SPEC_VERSION,
        "issuer": issuer,
        "jwks_uri": f"{base}/ssf/jwks",
        "delivery_methods_supported": list(DELIVERY_METHODS),
        "configuration_endpoint": f"{base}/ssf/streams",
        "status_endpoint": f"{base}/ssf/status",
        "add_subject_endpoint": f"{base}/ssf/subjects:add",
        "remove_subject_endpoint": f"{base}/ssf/subjects:remove",
        "verification_endpoint": f"{base}/ssf/verify",
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": default_subjects,
    }


def transmitter_app(ctx: AppContext, lifespan: Any = None) -> Starlette:
    """The ASGI app; ``lifespan`` starts and stops the reader and the pushers."""
    issuer = ctx.maker.issuer
    meta = orjson.dumps(metadata(issuer, ctx.default_subjects))

    async def principal(request: Request, scope: str) -> Principal:
        # Off the event loop: an introspection endpoint's answer may take seconds.
        try:
            who = await run_in_threadpool(ctx.authorize, request.headers.get("authorization"))
        except IntrospectionBusy:
            raise _Refused(
                503, "temporarily_unavailable", "too many token checks at once: try again",
                {"Retry-After": "1"},
            ) from None  # fmt: skip
        if who is None:
            challenge = 'Bearer realm="ssf", error="invalid_token"'
            raise _Refused(
                401, "invalid_token", "a valid bearer token is required",
                {"WWW-Authenticate": challenge},
            )  # fmt: skip
        if not who.may(scope):
            challenge = f'Bearer realm="ssf", error="insufficient_scope", scope="{scope}"'
            raise _Refused(
                403, "insufficient_scope", f"the token lacks the {scope} scope",
                {"WWW-Authenticate": challenge},
            )  # fmt: skip
        return who

    async def body_of(request: Request) -> bytes:
        try:
            return await read_body(request, MAX_BODY)
        except BodyRefused as exc:
            raise _Refused(exc.status, "invalid_request", exc.message) from None

    async def json_of(request: Request) -> Any:
        try:
            return orjson.loads(await body_of(request))
        except orjson.JSONDecodeError:
            raise _Refused(400, "invalid_request", "the body is not JSON") from None

    def stream_id_of(body: Any) -> str:
        return valid_id(body.get("stream_id") if isinstance(body, dict) else None)

    def valid_id(stream_id: Any) -> str:
        if not isinstance(stream_id, str) or not stream_id or len(stream_id) > 64:
            raise _Refused(400, "invalid_request", "stream_id is required")
        return stream_id

    def own_stream(who: Principal, stream_id: Any) -> Stream:
        stream = ctx.store.stream(valid_id(stream_id))
        if stream is None or stream.owner != who.client_id:
            raise NoSuchStream(stream_id)
        return stream

    def handler(
        fn: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except _Refused as exc:
                doc = {"error": exc.error, "description": exc.description}
                return Response(
                    orjson.dumps(doc), exc.status, exc.headers, media_type="application/json"
                )
            except StreamError as exc:
                doc = {"error": "invalid_request", "description": exc.message}
                return _json(doc, exc.status)
            except NoSuchStream:  # not the caller's, or deleted since the request found it
                return _json({"error": "not_found", "description": "no such stream"}, 404)

        return wrapped

    @handler
    async def configuration(_: Request) -> Response:
        return Response(meta, media_type="application/json")

    @handler
    async def keys(_: Request) -> Response:
        return _json(jwks(ctx.maker.signer, ctx.key_id))

    @handler
    async def streams(request: Request) -> Response:
        method = request.method
        who = await principal(request, READ if method == "GET" else MANAGE)
        if method == "GET":
            stream_id = request.query_params.get("stream_id")
            if stream_id is None:
                return _json(
                    [stream_view(s, issuer, ctx.keep_s) for s in ctx.store.streams(who.client_id)]
                )
            return _json(stream_view(own_stream(who, stream_id), issuer, ctx.keep_s))
        if method == "DELETE":
            stream = own_stream(who, request.query_params.get("stream_id"))
            await run_in_threadpool(ctx.store.delete_stream, stream.stream_id)
            ctx.on_change(stream.stream_id)
            log.info("stream deleted", extra={"stream_id": stream.stream_id})
            return Response(status_code=204)
        body = await json_of(request)
        if method == "POST":
            request_, _ = parse_request(body, partial=False)
            stream = new_stream(
                request_, owner=who.client_id, stream_id=uuid.uuid4().hex, now=ctx.clock(),
                allow_http_push=ctx.allow_http_push, allow_private_push=ctx.allow_private_push,
                max_retention_s=ctx.keep_s,
            )  # fmt: skip
            created = await run_in_threadpool(
                ctx.store.create_stream, stream, ctx.max_streams, ctx.max_streams_per_client
            )
            if created is None:
                raise _Refused(
                    409, "invalid_request",
                    f"at most {ctx.max_streams_per_client} streams a client and "
                    f"{ctx.max_streams} in all",
                )  # fmt: skip
            ctx.on_change(stream.stream_id)
            log.info(
                "stream created",
                extra={"stream_id": stream.stream_id, "method": stream.method,
                       "client_id": who.client_id},
            )  # fmt: skip
            return _json(stream_view(stream, issuer, ctx.keep_s), 201)
        sid = stream_id_of(body)
        request_, named = parse_request(body, partial=method == "PATCH")

        def update(stream: Stream) -> Stream:
            return changed(
                stream, request_, named, replace_all=method == "PUT",
                allow_http_push=ctx.allow_http_push, allow_private_push=ctx.allow_private_push,
                max_retention_s=ctx.keep_s,
            )  # fmt: skip

        done = await run_in_threadpool(ctx.store.change_stream, sid, who.client_id, update)
        ctx.on_change(sid)
        return _json(stream_view(done.stream, issuer, ctx.keep_s))

    @handler
    async def status(request: Request) -> Response:
        if request.method == "GET":
            who = await principal(request, READ)
            return _json(status_view(own_stream(who, request.query_params.get("stream_id"))))
        who = await principal(request, MANAGE)
        body = await json_of(request)
        sid = stream_id_of(body)
        done = await run_in_threadpool(
            ctx.store.change_stream, sid, who.client_id, lambda stream: with_status(stream, body)
        )
        if done.stream.status == "disabled":
            log.info("stream disabled", extra={"stream_id": sid, "dropped": done.dropped})
        ctx.on_change(sid)
        return _json(status_view(done.stream))

    async def subject_request(request: Request) -> tuple[Stream, dict[str, Any], Any]:
        who = await principal(request, MANAGE)
        body = await json_of(request)
        if not isinstance(body, dict) or set(body) - {"stream_id", "subject", "verified"}:
            raise _Refused(400, "invalid_request", "expected stream_id, subject, verified")
        stream = own_stream(who, body.get("stream_id"))
        problem = subject_problem(body.get("subject"))
        if problem is not None:
            raise _Refused(400, "invalid_request", f"subject: {problem}")
        return stream, body["subject"], body.get("verified")

    @handler
    async def add_subject(request: Request) -> Response:
        stream, subject, verified = await subject_request(request)
        if verified is not None and not isinstance(verified, bool):
            raise _Refused(400, "invalid_request", "verified must be a boolean")
        added = await run_in_threadpool(
            ctx.store.add_subject, stream.stream_id, subject, ctx.max_subjects
        )
        if not added:
            raise _Refused(
                400, "invalid_request", f"a stream has at most {ctx.max_subjects} subjects"
            )
        return Response(status_code=200)

    @handler
    async def remove_subject(request: Request) -> Response:
        stream, subject, _ = await subject_request(request)
        await run_in_threadpool(ctx.store.remove_subject, stream.stream_id, subject)
        return Response(status_code=204)

    @handler
    async def verify(request: Request) -> Response:
        who = await principal(request, MANAGE)
        body = await json_of(request)
        sid, now = stream_id_of(body), ctx.clock()
        asked: list[str | None] = []

        def verified(stream: Stream) -> Stream:  # 429 within the minimum interval
            asked.append(verification_state(stream, body, now))
            return replace(stream, last_verification_at=now)

        done = await run_in_threadpool(ctx.store.change_stream, sid, who.client_id, verified)
        stream = done.stream
        if stream.holds_events:
            row = ctx.maker.verification(stream, asked[0], uuid.uuid4().hex, now)
            keep_s = retention_of(stream, ctx.keep_s)
            await run_in_threadpool(ctx.store.enqueue, [(sid, *row)], now, keep_s)
        ctx.on_change(sid)
        return Response(status_code=204)

    @handler
    async def poll(request: Request) -> Response:
        who = await principal(request, READ)
        stream = own_stream(who, request.path_params["stream_id"])
        if stream.method != POLL_DELIVERY:
            raise _Refused(400, "invalid_request", "this stream is delivered by push")
        try:
            asked = parse_poll(await body_of(request))
        except PollRequestError as exc:
            return _json(set_error("invalid_request", str(exc)), 400)
        sid = stream.stream_id
        acked = [(jti, "delivered", None) for jti in asked.ack]
        if acked:
            n = await run_in_threadpool(ctx.store.settle_many, sid, acked)
            _count(ctx.stats, "polls_acknowledged", n)
        refused = [(jti, "refused", err.err[:64]) for jti, err in asked.set_errs.items()]
        if refused:
            n = await run_in_threadpool(ctx.store.settle_many, sid, refused)
            _count(ctx.stats, "polls_refused", n)
            errs = sorted({err for _, _, err in refused})
            log.warning(  # one line a poll, however many SETs it refuses
                "a poll receiver refused SETs",
                extra={"stream_id": sid, "count": len(refused), "errs": errs[:8]},
            )
        deadline = time.monotonic() + ctx.poll_wait_s
        while True:
            current = ctx.store.stream(sid)
            enabled = current is not None and current.status == "enabled"
            found: list[Queued] = []
            more = False
            if enabled and asked.max_events > 0:
                found, more = ctx.store.pending(sid, ctx.clock(), asked.max_events)
            if found or asked.return_immediately or asked.max_events == 0:
                break
            if time.monotonic() >= deadline or await request.is_disconnected():
                break
            await asyncio.sleep(POLL_STEP_S)
        sets = {q.jti: q.token.decode() for q in found}
        _count(ctx.stats, "polls_sets_sent", len(sets))
        return _json({"sets": sets, "moreAvailable": more})

    routes = [
        Route("/.well-known/ssf-configuration", configuration, methods=["GET"]),
        Route("/ssf/jwks", keys, methods=["GET"]),
        Route("/ssf/streams", streams, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        Route("/ssf/status", status, methods=["GET", "POST"]),
        Route("/ssf/subjects:add", add_subject, methods=["POST"]),
        Route("/ssf/subjects:remove", remove_subject, methods=["POST"]),
        Route("/ssf/verify", verify, methods=["POST"]),
        Route("/ssf/poll/{stream_id}", poll, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
