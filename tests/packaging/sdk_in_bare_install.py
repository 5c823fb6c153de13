"""Run inside a virtualenv holding only the bare wheel (`pip install sessionwarden`, no extras):
the SDK works, and nothing of the old top-level names, the processors' or the audit tools'
dependencies is installed. Prints one line per check; any failure raises."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import sessionwarden
from sessionwarden.contracts.codec import decode_auth_event
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.sdk import RevocationMiddleware, RevocationSet, constant, session_id_from_header
from sessionwarden.sdk.publisher import to_wire

assert "site-packages" in (sessionwarden.__file__ or ""), sessionwarden.__file__
print("sessionwarden from", sessionwarden.__file__)

for name in ("streams", "schemas", "faust", "aiokafka", "matplotlib", "aiohttp", "tqdm"):
    assert importlib.util.find_spec(name) is None, f"{name} is importable"
    print("absent:", name)

# The publisher's codec: a valid event becomes its wire bytes, keyed by user_id, and back.
now = datetime.now(UTC)
activity = {
    "type": "activity",
    "event_id": str(uuid.uuid4()),
    "occurred_at": now.isoformat(),
    "user_id": "alice",
    "tenant": "acme",
    "session_id": "s-1",
    "action": "read",
}
key, value = to_wire(activity)
assert b"alice" == key
assert "s-1" == decode_auth_event(value).session_id  # type: ignore[union-attr]
print("encoded an auth event:", len(value), "bytes")

# The revocation set, and the ASGI middleware refusing a revoked session.
revoked = RevocationSet(max_lifetime_s=3600)
assert revoked.add(
    Revocation(
        revocation_id=uuid.uuid4(),
        session_id="s-1",
        user_id="alice",
        tenant="acme",
        reason="idle_timeout",
        effective_at=now - timedelta(seconds=1),
        emitted_at=now,
        roles=["viewer"],
        permissions=[],
        policy_version="bare",
    ),
    now=now.timestamp(),
)


class Listener:
    """What the middleware asks of a listener, backed by the set above."""

    fail_closed = False

    def healthy(self) -> bool:
        return True

    def is_revoked(self, tenant: str, session_id: str) -> bool:
        return revoked.contains(tenant, session_id)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def status_of(session_id: bytes) -> int:
    guarded = RevocationMiddleware(
        app, Listener(), session_id_from_header("x-session-id"), constant("acme")
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/", "headers": [(b"x-session-id", session_id)]}
    await guarded(scope, receive, send)
    return int(sent[0]["status"])


assert (401, 200) == (asyncio.run(status_of(b"s-1")), asyncio.run(status_of(b"s-2")))
print("middleware: revoked 401, live 200")

# The other SDK surfaces import, and the browser script ships as package data.
for module in ("push", "pg_guard", "listener", "listener_metrics"):
    importlib.import_module(f"sessionwarden.sdk.{module}")
script = resources.files("sessionwarden.sdk").joinpath("static/sessionwarden.js").read_text()
assert "sessionwarden" in script.lower()
print("push, pg_guard, listener import; browser script", len(script), "chars")
sys.exit(0)
