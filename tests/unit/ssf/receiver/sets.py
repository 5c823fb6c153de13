"""Security Event Tokens for the receiver's tests, signed with the gate tests' keys."""

from __future__ import annotations

from typing import Any, Literal

import orjson

from sessionwarden.gate.jwt import Jwks
from sessionwarden.ssf import vocabulary as v
from sessionwarden.ssf.receiver.intake import Intake, IntakeRules
from sessionwarden.ssf.receiver.lanes import Lanes
from sessionwarden.ssf.receiver.replay import JtiStore
from sessionwarden.ssf.receiver.verify import Trust
from tests.unit.gate.tokens import b64, jwks, sign

NOW = 1_800_000_000.0
ISSUER = "https://idp.example"
AUDIENCE = "https://sessionwarden.example/ssf"
TENANT = "acme"
RULES = IntakeRules(iat_window_s=600.0, leeway_s=30.0, max_token_bytes=65_536)


def trust(
    name: str = "idp",
    tenant: str = TENANT,
    risk: dict[str, str] | None = None,
    keys: Any = None,
    session_revoked_scope: Literal["session", "user"] = "session",
) -> Trust:
    body = jwks() if keys is None else keys
    fetch = body if callable(body) else (lambda: body)
    return Trust(
        name=name,
        issuer=ISSUER,
        audience=AUDIENCE,
        tenant=tenant,
        jwks=Jwks(fetch, 300.0, lambda: 0.0, 10.0),
        risk_profiles=risk if risk is not None else {"nist-aal:aal1": "high", "risk:high": "high"},
        session_revoked_scope=session_revoked_scope,
    )


def complex_subject(
    user: str = "u-1", session: str | None = "s-1", tenant: str | None = TENANT
) -> dict[str, Any]:
    subject: dict[str, Any] = {"format": "complex", "user": {"format": "opaque", "id": user}}
    if session is not None:
        subject["session"] = {"format": "opaque", "id": session}
    if tenant is not None:
        subject["tenant"] = {"format": "opaque", "id": tenant}
    return subject


def claims(
    event_type: str = v.SESSION_REVOKED,
    payload: dict[str, Any] | None = None,
    subject: dict[str, Any] | None = None,
    jti: str = "j-1",
    iat: float = NOW,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(iat),
        "jti": jti,
        "sub_id": complex_subject() if subject is None else subject,
        "events": {event_type: {"event_timestamp": int(iat)} if payload is None else payload},
        **extra,
    }


def set_token(body: dict[str, Any] | None = None, alg: str = "RS256", **header: Any) -> str:
    return sign(claims() if body is None else body, alg, typ="secevent+jwt", **header)


def unsigned(body: dict[str, Any] | None = None) -> str:
    head = b64(orjson.dumps({"alg": "none", "typ": "secevent+jwt"}))
    return f"{head}.{b64(orjson.dumps(claims() if body is None else body))}."


def intake(capacity: int = 1000, **trusts: Trust) -> Intake:
    return Intake(trusts or {"idp": trust()}, JtiStore(capacity), RULES)


class FakePublisher:
    """Collects published events; ``fail`` makes the next publishes raise, as a broker that
    does not take them."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.fail = False

    async def __call__(self, event: Any) -> object:
        if self.fail:
            raise OSError("broker down")
        self.events.append(event)
        return None


def receiving(
    publisher: FakePublisher, now: float = NOW, lanes: Lanes | None = None, **trusts: Trust
) -> Any:
    from prometheus_client import CollectorRegistry

    from sessionwarden.ssf.receiver.metrics import ReceiverMetrics
    from sessionwarden.ssf.receiver.taking import Receiving

    taken = intake(**trusts)
    metrics = ReceiverMetrics(CollectorRegistry(), list(taken.trusts))
    return Receiving(taken, publisher, metrics, lambda: now, lanes)


def count(ctx: Any, transmitter: str, outcome: str, code: str = "") -> float:
    return float(ctx.metrics.sets.labels(transmitter, outcome, code)._value.get())
