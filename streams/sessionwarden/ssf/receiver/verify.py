"""A Security Event Token verified against its transmitter: signature, claims, shape.

The signature and the registered claims go through the gate's JWT verifier
(:func:`sessionwarden.gate.jwt.verify`, one verifier for both): RS256 or ES256 only (``none``
and HMAC never), ``typ`` ``secevent+jwt`` (SSF 1.0 section 4.1.3), the transmitter's ``iss``
and our ``aud``, and an ``iat`` within the window. Then the SET itself (RFC 8417 section 2.2,
SSF 1.0 section 4.1): a ``jti``, exactly one event in ``events`` with an object as its payload,
and a valid subject (``sub_id``, or the event's ``subject`` as older transmitters send it).

Each failure is a :class:`Refused` with the RFC 8935 code a transmitter expects:

========================================  ====================
unparseable, unsigned, wrong ``typ``,       ``invalid_request``
outside the ``iat`` window, bad shape
unknown key, signature that fails           ``invalid_key``
another ``iss``                             ``invalid_issuer``
an ``aud`` without ours                     ``invalid_audience``
========================================  ====================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sessionwarden.gate.decision import TokenRefused
from sessionwarden.gate.jwt import BAD_SIGNATURE, Jwks, JwtRules, verify
from sessionwarden.ssf.errors import (
    INVALID_AUDIENCE,
    INVALID_ISSUER,
    INVALID_KEY,
    INVALID_REQUEST,
)
from sessionwarden.ssf.receiver.refusal import Refused, Unavailable
from sessionwarden.ssf.subjects import subject_problem
from sessionwarden.ssf.vocabulary import SET_TYPE

ALGORITHMS = frozenset({"RS256", "ES256"})
MAX_JTI_CHARS = 256
MAX_EVENT_TYPE_CHARS = 512

_CODES = {
    "wrong_issuer": (INVALID_ISSUER, "the SET's issuer is not this transmitter's"),
    "wrong_audience": (INVALID_AUDIENCE, "the SET's audience does not name this receiver"),
    "unknown_key": (INVALID_KEY, "the SET is signed by a key the transmitter's JWKS lacks"),
    "token_expired": (INVALID_REQUEST, "the SET was issued outside the accepted iat window"),
    "token_not_yet_valid": (INVALID_REQUEST, "the SET is not valid yet (iat or nbf ahead)"),
}


@dataclass(frozen=True)
class Trust:
    """What one transmitter's SETs must satisfy: its name, issuer, our audience, its keys,
    the tenant its events apply to, its levels-to-risk-profiles map, and what a
    ``session-revoked`` ends: ``session`` (that session) or ``user`` (every live session of its
    user: a federated peer whose sessions this deployment does not hold)."""

    name: str
    issuer: str
    audience: str
    tenant: str
    jwks: Jwks
    risk_profiles: dict[str, str] = field(default_factory=dict)
    session_revoked_scope: Literal["session", "user"] = "session"


@dataclass(frozen=True)
class SecurityEvent:
    """A verified SET's one event."""

    issuer: str
    jti: str
    iat: float
    event_type: str
    payload: dict[str, Any]
    subject: dict[str, Any]


def rules_of(trust: Trust, iat_window_s: float, leeway_s: float, max_bytes: int) -> JwtRules:
    return JwtRules(
        algorithms=ALGORITHMS,
        issuer=trust.issuer,
        audience=trust.audience,
        leeway_s=leeway_s,
        max_bytes=max_bytes,
        typ=SET_TYPE,
        require_exp=False,
        max_age_s=iat_window_s,
    )


def verify_set(token: str, trust: Trust, rules: JwtRules, now: float) -> SecurityEvent:
    """The SET's event, or :class:`Refused` with its RFC 8935 code (:class:`Unavailable` when
    the transmitter's keys cannot be loaded). ``now`` is wall-clock time."""
    try:
        claims = verify(token, trust.jwks, rules, now)
    except TokenRefused as refused:
        if refused.reason == "keys_unavailable":
            raise Unavailable(f"the keys of transmitter {trust.name} cannot be loaded") from None
        if refused.reason == "token_invalid" and refused.detail == BAD_SIGNATURE:
            raise Refused(INVALID_KEY, "the SET's signature does not verify") from None
        code, description = _CODES.get(
            refused.reason, (INVALID_REQUEST, f"not a valid SET: {refused.detail or refused}")
        )
        raise Refused(code, description) from None
    return _event_of(claims)


def _event_of(claims: dict[str, Any]) -> SecurityEvent:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
        raise Refused(INVALID_REQUEST, f"jti must be a string of 1 to {MAX_JTI_CHARS} characters")
    events = claims.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        raise Refused(INVALID_REQUEST, "events must hold exactly one event")
    ((event_type, payload),) = events.items()
    if len(event_type) > MAX_EVENT_TYPE_CHARS or not isinstance(payload, dict):
        raise Refused(INVALID_REQUEST, "the event's payload must be a JSON object")
    subject = claims.get("sub_id", payload.get("subject"))
    problem = subject_problem(subject)
    if problem is not None:
        raise Refused(INVALID_REQUEST, f"sub_id: {problem}")
    assert isinstance(subject, dict)  # subject_problem accepts only objects
    return SecurityEvent(
        issuer=str(claims["iss"]),
        jti=jti,
        iat=float(claims["iat"]),
        event_type=event_type,
        payload=payload,
        subject=subject,
    )
