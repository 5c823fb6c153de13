"""An example service guarded by Sessionwarden: Starlette under uvicorn, with a page that logs
itself out the moment its session is revoked.

    .venv/bin/python examples/service/app.py --port 8080
    open http://127.0.0.1:8080/login                       # sign in, watch the page end by itself
    curl -i -H 'X-Session-Id: s-1' http://127.0.0.1:8080/api/data

``create_app(listener, hub, publisher)`` builds the ASGI app:

* ``/login`` signs a user in: a fresh session id in an HttpOnly cookie, and a ``login`` event
  published to Kafka, so the enforcer tracks the session and times it out. The id carries
  its issue time, tenant, user and risk under an HMAC of the service's session key
  (``issue_session_id``): a session id the service did not issue, or one older than the
  listener's ``max_lifetime_s`` (whose revocation the listener may have forgotten), is refused
  everywhere (401, the page sends it to ``/login``), whatever Kafka says; sign-ins are
  rate-limited per client address;
* ``/logout`` publishes the logout of any live id it issued (the id names its user and
  tenant: no session table, any instance, any restart);
* ``/`` (a page of protected data) and ``/api/data`` sit behind ``RevocationMiddleware``: 401
  once the session is revoked, 400 when the request names its session ambiguously; they use
  the session the middleware checked (``scope["sessionwarden"]``), never the cookie again;
* the page includes the Sessionwarden browser script, whose revocation stream (mounted beside
  the middleware) logs it out, with no click, when the session hits its deadline;
* ``/ws/echo`` (behind the middleware too) echoes text frames until the session is revoked;
* ``/healthz`` says whether the revocation listener is current.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import logging
import math
import os
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sessionwarden.policy import default_policy
from sessionwarden.sdk.asgi import (
    SCOPE_KEY,
    WS_CLOSE_REVOKED,
    AmbiguousIdentity,
    RevocationMiddleware,
    Scope,
    constant,
    one_of,
    session_id_from_cookie,
    session_id_from_header,
)
from sessionwarden.sdk.lifetime import lifetime_left, within_lifetime
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.sdk.publisher import AsyncAuthEventPublisher
from sessionwarden.sdk.push import SCRIPT_PATH, PushHub, RevokedLike, browser_routes

log = logging.getLogger("example.service")

SESSION_HEADER = "x-session-id"
SESSION_COOKIE = "session"
RISKS = ("low", "medium", "high")
MAX_FORM = 4096
USER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
REASONS = {
    "idle_timeout": "idle timeout",
    "absolute_timeout": "session time limit reached",
    "logout": "signed out",
    "permissions_revoked": "permissions revoked",
    "step_up_required": "sign-in required again",
    "session_limit": "signed in on too many devices",
    "operator": "ended by an administrator",
    "signal": "ended on a security signal from your sign-in provider",
    "ended": "ended",
}

SESSION_KEY_ENV = "EXAMPLE_SESSION_KEY"  # hex; main() reads it (default: a fresh random key)

get_session_id = one_of(
    session_id_from_header(SESSION_HEADER), session_id_from_cookie(SESSION_COOKIE)
)


ID_FIELDS = 5  # issued_at, tenant, user, risk, nonce
MAX_ID_CHARS = 256  # the middleware's (and the schema's) bound on a session id


class Issued(NamedTuple):
    """What a session id this service issued says of its session (signed: not the client's
    word)."""

    tenant: str
    user: str
    risk: str
    issued_at: float


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mac(key: bytes, body: str) -> str:
    digest = hmac.new(key, b"example-session-v1\x00" + body.encode(), hashlib.sha256).digest()
    return _b64(digest[:18])


def issue_session_id(
    key: bytes,
    user: str = "user",
    tenant: str = "acme",
    risk: str = "medium",
    issued_at: float | None = None,
) -> str:
    """A fresh session id the service of ``tenant`` holding ``key`` will accept until
    ``issued_at`` (default now) plus the listener's ``max_lifetime_s``:
    ``<base64url(issued_at, tenant, user, risk, nonce)>.<HMAC>``. Carrying its user and tenant,
    the id is enough to publish its logout, on any instance, after any restart."""
    issued = int(time.time() if issued_at is None else issued_at)
    fields = (str(issued), tenant, user, risk, secrets.token_urlsafe(12))
    if any("\x1f" in field or not field for field in fields):
        raise ValueError("empty field, or one with a unit separator")
    body = _b64("\x1f".join(fields).encode())
    session_id = f"{body}.{_mac(key, body)}"
    if len(session_id) > MAX_ID_CHARS:
        raise ValueError(f"the session id would be longer than {MAX_ID_CHARS} characters")
    return session_id


def read_session_id(key: bytes, session_id: str) -> Issued | None:
    """What ``session_id`` says, if it was issued with ``key`` (constant-time comparison); None
    for anything else. Its age is not checked here: see ``_Accounts.valid``."""
    body, dot, mac = session_id.rpartition(".")
    if not (dot and body) or len(session_id) > MAX_ID_CHARS:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(key, body).encode()):
        return None
    try:
        fields = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("\x1f")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    if len(fields) != ID_FIELDS or not re.fullmatch(r"[0-9]{1,12}", fields[0]):
        return None
    issued_at, tenant, user, risk, _ = fields
    return Issued(tenant, user, risk, float(issued_at))


def is_issued(key: bytes, session_id: str) -> bool:
    """Whether ``session_id`` was issued with ``key`` (of any age and tenant)."""
    return read_session_id(key, session_id) is not None


def _session_of(scope: Scope) -> str | None:
    """The session of a request: the one the middleware checked; outside the middleware (the
    deliberately weakened variants only) read from the request."""
    if SCOPE_KEY in scope:
        identity = scope[SCOPE_KEY]
        return identity.session_id if identity is not None else None
    try:
        return get_session_id(scope)
    except AmbiguousIdentity:
        return None


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - example service</title></head>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto">
<h1>Example service</h1>{notice}
<form method="post" action="/login">
<p><label>User <input name="user" required pattern="[A-Za-z0-9._@-]{{1,64}}"></label></p>
<p><label>Risk profile <select name="risk">{options}</select></label></p>
<p><button type="submit">Sign in</button></p>
</form></body></html>"""

DATA_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Account - example service</title>
<script src="{script}" data-login="/login" defer></script></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto">
<h1>Account</h1>
<main data-sessionwarden-protected>
<p id="who">Signed in as <b>{user}</b> ({risk} risk).</p>
<table id="statement"><tr><th>Date</th><th>Item</th><th>Amount</th></tr>
<tr><td>2026-11-28</td><td>Salary</td><td>+4,210.00</td></tr>
<tr><td>2026-11-29</td><td>Rent</td><td>-1,350.00</td></tr>
<tr><td>2026-11-30</td><td>Groceries</td><td>-86.40</td></tr></table>
<p id="balance">Balance: 12,804.17</p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
</main></body></html>"""


def listener_lookup(listener: RevocationListener) -> Any:
    """The hub's view of the listener's revocation set, by (tenant, session)."""

    def lookup(tenant: str, session_id: str) -> RevokedLike | None:
        return listener.revocation(tenant, session_id)

    return lookup


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    return {k: v[0] for k, v in fields.items()}


class _RateLimit:
    """A token bucket per client address (the newest ``max_keys`` addresses): how many
    sessions one client may start. Not one for the whole process: one client could then lock
    every other out of signing in."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, client: str, now: float) -> float:
        """0.0 if ``client`` may sign in now (and it is counted), else the seconds to wait."""
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens < 1.0:
            return (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens - 1.0, now)
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0


LOGIN_RATE = (1.0, 20.0)  # sign-ins per client address: 1 a second, bursts of 20
RECENT_LOGOUTS = 10_000  # logouts published lately, not published again (a double click)


class _Accounts:
    """The example's own sign-in: it issues signed session ids carrying their tenant, user,
    risk and issue time, accepts them until the listener's ``max_lifetime_s`` has passed, and
    publishes the auth events of its sessions. It keeps no session table: any instance holding
    the key, after any restart, can serve a session and sign it out."""

    def __init__(
        self,
        publisher: AsyncAuthEventPublisher | None,
        tenant: str,
        page_script: bool,
        key: bytes,
        max_lifetime_s: float,
        clock: Callable[[], float],
        limit: _RateLimit,
    ) -> None:
        self.publisher = publisher
        self.tenant = tenant
        self.page_script = page_script
        self.key = key
        self.max_lifetime_s = max_lifetime_s
        self.clock = clock
        self.limit = limit
        self._logged_out: OrderedDict[str, None] = OrderedDict()

    def valid(self, session_id: str | None) -> Issued | None:
        """The session, if this service issued it for its tenant and it is younger than the
        listener's ``max_lifetime_s``: the listener forgets a revocation that long after it
        took effect, so an older session must be refused here, or a revoked or timed-out id
        would work again once its revocation is forgotten."""
        if session_id is None:
            return None
        issued = read_session_id(self.key, session_id)
        if issued is None or issued.tenant != self.tenant:
            return None
        if not within_lifetime(issued.issued_at, self.max_lifetime_s, now=self.clock()):
            return None
        return issued

    def issued(self, session_id: str | None) -> bool:
        return self.valid(session_id) is not None

    def known(self, tenant: str, session_id: str) -> bool:
        """The browser stream's authenticator: a live session of this tenant that we issued."""
        return tenant == self.tenant and self.issued(session_id)

    def owner(self, tenant: str, session_id: str) -> str | None:
        """Whose session it is (the browser stream caps streams per user)."""
        issued = self.valid(session_id)
        return None if issued is None or tenant != self.tenant else issued.user

    def _limited(self, request: Request) -> Response | None:
        client = request.client.host if request.client is not None else ""
        wait = self.limit.wait(client, self.clock())
        if not wait:
            return None
        retry = str(max(1, math.ceil(wait)))
        return HTMLResponse("too many sign-ins; try again later", 429, {"retry-after": retry})

    async def _event(self, doc: dict[str, Any]) -> None:
        if self.publisher is not None:
            event = {"event_id": str(uuid.uuid4()), "occurred_at": _now(), **doc}
            await self.publisher.publish(event)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            reason = request.query_params.get("ended", "")
            notice = ""
            if reason in REASONS:
                notice = f'<p role="status">Your session ended: {REASONS[reason]}.</p>'
            options = "".join(f'<option value="{r}">{r}</option>' for r in RISKS)
            return HTMLResponse(LOGIN_PAGE.format(notice=notice, options=options))
        form = await _form(request)
        user, risk = form.get("user", ""), form.get("risk", "medium")
        if not USER_RE.match(user) or risk not in RISKS:
            return HTMLResponse("invalid user or risk profile", 400)
        refused = self._limited(request)
        if refused is not None:
            return refused
        session_id = issue_session_id(self.key, user, self.tenant, risk, self.clock())
        await self._event(
            {"type": "login", "user_id": user, "tenant": self.tenant, "session_id": session_id,
             "user_type": "customer", "risk_profile": risk, "roles": ["viewer"],
             "permissions": [], "auth_method": "password", "auth_time": _now()}
        )  # fmt: skip
        response = RedirectResponse("/", 303)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax")
        return response

    async def logout(self, request: Request) -> Response:
        """Publishes the logout of any live session this service issued: the id itself names
        the user and tenant, so no instance needs to remember the sign-in. Never rate-limited
        (nobody may keep a user from signing out); a repeat of a logout published lately by
        this process publishes nothing."""
        try:
            session_id = get_session_id(request.scope)
        except AmbiguousIdentity:
            session_id = None
        issued = self.valid(session_id)
        if issued is not None and session_id is not None and session_id not in self._logged_out:
            await self._event(
                {"type": "logout", "user_id": issued.user, "tenant": issued.tenant,
                 "session_id": session_id}
            )  # fmt: skip
            self._logged_out[session_id] = None  # published: a second click publishes nothing
            while len(self._logged_out) > RECENT_LOGOUTS:
                self._logged_out.popitem(last=False)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def page(self, request: Request) -> Response:
        issued = self.valid(_session_of(request.scope))
        if issued is None:
            return RedirectResponse("/login", 303)
        body = DATA_PAGE.format(script=SCRIPT_PATH, user=html.escape(issued.user),
                                risk=html.escape(issued.risk))  # fmt: skip
        if not self.page_script:
            body = re.sub(r"<script [^>]*></script>", "", body)
        return HTMLResponse(body, headers={"cache-control": "no-store"})

    async def data(self, request: Request) -> Response:
        if not self.issued(_session_of(request.scope)):
            return JSONResponse({"error": "login required"}, 401, {"www-authenticate": "Bearer"})
        return JSONResponse({"hello": "world"}, headers={"cache-control": "no-store"})

    async def echo(self, websocket: WebSocket) -> None:
        """Echoes text frames until the session is revoked (the middleware closes the socket)
        or its lifetime runs out (closed here with 4401, like a revocation)."""
        issued = self.valid(_session_of(websocket.scope))
        if issued is None:
            await websocket.close(1008)
            return
        await websocket.accept()
        left = lifetime_left(issued.issued_at, self.max_lifetime_s, now=self.clock())
        with contextlib.suppress(WebSocketDisconnect):
            try:
                async with asyncio.timeout(left):
                    while True:
                        await websocket.send_text((await websocket.receive_text())[:MAX_FORM])
            except TimeoutError:
                await websocket.close(WS_CLOSE_REVOKED)


def _healthz(listener: RevocationListener) -> Any:
    async def healthz(request: Request) -> Response:
        doc = {
            "healthy": listener.healthy(),
            "ready": listener.ready(),
            "staleness_s": round(min(listener.staleness(), 1e9), 3),
            "revoked_sessions": len(listener),
        }
        return JSONResponse(doc, 200 if doc["healthy"] else 503)

    return healthz


def create_app(
    listener: RevocationListener,
    hub: PushHub,
    publisher: AsyncAuthEventPublisher | None = None,
    tenant: str = "acme",
    unprotected: tuple[str, ...] = (),
    page_script: bool = True,
    session_key: bytes | None = None,
    *,
    max_lifetime_s: float | None = None,
    clock: Callable[[], float] = time.time,
    login_rate: tuple[float, float] = LOGIN_RATE,
) -> Starlette:
    """The example service of one ``tenant``; ``publisher`` (on the input topic) makes
    ``/login`` real; ``session_key`` signs the session ids it issues (default: a random key,
    so only this instance's sessions are accepted). A session is refused once it is older than
    ``max_lifetime_s`` (default: the listener's, else the default policy's longest absolute
    timeout), when the listener may have forgotten its revocation. ``login_rate`` (per second,
    burst) bounds the sign-ins of one client address. ``unprotected`` (paths of
    ``/``, ``/api/data``, ``/ws/echo``) and ``page_script=False`` build a deliberately weakened
    service, which ``sessionwarden drill`` must catch as a bypass."""
    get_tenant = constant(tenant)
    key = session_key if session_key is not None else secrets.token_bytes(32)
    if max_lifetime_s is None:
        max_lifetime_s = getattr(listener, "max_lifetime_s", None) or default_policy().max_absolute
    limit = _RateLimit(*login_rate)
    accounts = _Accounts(publisher, tenant, page_script, key, max_lifetime_s, clock, limit)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if publisher is not None:
            await publisher.close(5.0, strict=False)

    routes = [
        Route("/", accounts.page),
        Route("/api/data", accounts.data),
        WebSocketRoute("/ws/echo", accounts.echo),
    ]
    guarded = Starlette(routes=[r for r in routes if r.path not in unprotected])
    return Starlette(
        lifespan=lifespan,
        routes=[
            *browser_routes(
                hub, get_session_id, get_tenant, authenticate=accounts.known, owner=accounts.owner
            ),
            Route("/login", accounts.login, methods=["GET", "POST"]),
            Route("/logout", accounts.logout, methods=["POST"]),
            Route("/healthz", _healthz(listener)),
            *(r for r in routes if r.path in unprotected),
            Mount("/", app=RevocationMiddleware(guarded, listener, get_session_id, get_tenant)),
        ],
    )


def main() -> None:
    import uvicorn

    from sessionwarden.config.settings import load_settings
    from sessionwarden.kafka.security import KafkaSecurity
    from sessionwarden.ops.logs import configure_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--config", help="Sessionwarden settings TOML (environment wins)")
    parser.add_argument("--tenant", default="acme", help="the tenant this service serves")
    parser.add_argument(
        "--fail-open", action="store_true", help="serve while stale (default: 503 while stale)"
    )
    parser.add_argument("--staleness-budget", type=float, default=10.0, metavar="SECONDS")
    args = parser.parse_args()
    settings = load_settings(args.config)
    configure_logging(settings.logging.level, "text")
    hub = PushHub()
    listener = RevocationListener.from_settings(
        settings,
        fail_closed=not args.fail_open,
        staleness_budget_s=args.staleness_budget,
        on_revocation=hub.on_revocation,
    )
    hub.lookup = listener_lookup(listener)
    publisher = AsyncAuthEventPublisher(
        settings.kafka.bootstrap_servers,
        settings.topics.input,
        **KafkaSecurity.from_settings(settings.kafka).librdkafka(),
    )
    key_hex = os.environ.get(SESSION_KEY_ENV)
    key = bytes.fromhex(key_hex) if key_hex else None
    app = create_app(listener, hub, publisher, args.tenant, session_key=key)
    listener.start()
    if not listener.wait_ready(30):
        log.warning("the revocation set is not rebuilt yet; serving anyway")
    try:
        print(f"listening on http://{args.host}:{args.port}/login", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        listener.close()


if __name__ == "__main__":
    main()
