"""A verified security event as the enforcer's input: which event, whose, which tenant.

=====================================  ====================================================
CAEP ``session-revoked``                 ``session_revoked`` of the subject's session
                                         (a subject with a user and no session, or the
                                         session ``ALL``: every live session of the user,
                                         ``user_revoked``)
CAEP ``credential-change``               ``user_revoked``, signal ``credential_change``
RISC ``account-disabled``                ``user_revoked``, signal ``account_disabled``
RISC ``account-purged``                  ``user_revoked``, signal ``account_purged``
RISC ``credential-compromise``           ``user_revoked``, signal ``credential_compromise``
RISC ``sessions-revoked``                ``user_revoked``, signal ``sessions_revoked``
CAEP ``assurance-level-change``          ``risk_change`` to the profile the transmitter's
                                         ``risk_profiles`` give ``<namespace>:<current_level>``
CAEP ``risk-level-change``               ``risk_change`` to the profile of ``risk:<current_level>``
=====================================  ====================================================

Every other event (the stream's own verification and stream-updated events, and types this
receiver does not act on) is :class:`Ignored`, as is a level the map does not list: the
transmitter did nothing wrong, and nothing changes here.

A transmitter configured with ``session_revoked_scope = "user"`` (a federated peer: another
deployment whose sessions are not this one's) has every ``session-revoked`` end every live
session of its user here, whatever session it names.

Keycloak's transmitter names the session ``{"format": "opaque", "id": "ALL"}`` when an
administrator signs a user out of all sessions; that id is taken to mean every session.

The user is the subject's ``user`` member, or the subject itself: ``iss_sub`` gives ``sub``,
``opaque`` its ``id``, ``email`` the address. A subject that names a tenant (a complex subject's
``tenant`` member, opaque) must name the transmitter's own tenant: anything else is
``access_denied``. The event id is a UUID derived from (issuer, jti), so a SET delivered twice
makes the same input event, which the enforcer takes once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sessionwarden.ssf import vocabulary as v
from sessionwarden.ssf.errors import ACCESS_DENIED, INVALID_REQUEST
from sessionwarden.ssf.receiver.refusal import Refused
from sessionwarden.ssf.receiver.verify import SecurityEvent, Trust
from sessionwarden.ssf.subjects import COMPLEX, EMAIL, ISS_SUB, OPAQUE

EVENT_NAMESPACE = uuid.UUID("6f1d1a52-44a5-4bc4-9a39-5b1f0d0e6c11")
"""uuid5 namespace of the input events made from SETs."""

USER_SIGNALS: dict[str, str] = {
    v.CREDENTIAL_CHANGE: "credential_change",
    v.ACCOUNT_DISABLED: "account_disabled",
    v.ACCOUNT_PURGED: "account_purged",
    v.CREDENTIAL_COMPROMISE: "credential_compromise",
    v.SESSIONS_REVOKED: "sessions_revoked",
}
"""Events that end every live session of their user, with the signal recorded."""
ALL_SESSIONS = "ALL"
"""The session id that stands for every session of the user (Keycloak's admin sign-out)."""


@dataclass(frozen=True)
class Ignored:
    """A valid SET that changes nothing here; ``reason`` is a metrics label."""

    reason: str


def event_id(issuer: str, jti: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"{len(issuer)}:{issuer}{jti}")


def to_input(
    event: SecurityEvent, trust: Trust, received_at: float | None = None
) -> dict[str, Any] | Ignored:
    """The input event (a dict of the auth.events schema) for ``event``, or why none;
    :class:`Refused` for a subject this receiver cannot act on or another tenant's."""
    kind = event.event_type
    if kind in v.SSF_EVENTS:
        return Ignored("stream_event")
    if kind == v.SESSION_REVOKED:
        base = _base(event, trust, received_at)
        session = _member(event.subject, "session")
        if (
            session is None
            or session == {"format": OPAQUE, "id": ALL_SESSIONS}
            or trust.session_revoked_scope == "user"
        ):
            return {**base, "type": "user_revoked", "signal": "sessions_revoked"}
        return {
            **base, "type": "session_revoked", "signal": "session_revoked",
            "session_id": _opaque(session, "session"),
        }  # fmt: skip
    if kind in USER_SIGNALS:
        return {
            **_base(event, trust, received_at),
            "type": "user_revoked",
            "signal": USER_SIGNALS[kind],
        }
    if kind in (v.ASSURANCE_LEVEL_CHANGE, v.RISK_LEVEL_CHANGE):
        level = _level_key(event)
        profile = trust.risk_profiles.get(level) if level is not None else None
        if profile is None:
            return Ignored("unmapped_level")
        change = {
            **_base(event, trust, received_at),
            "type": "risk_change",
            "risk_profile": profile,
        }
        session = _member(event.subject, "session")
        if session is not None:
            change["session_id"] = _opaque(session, "session")
        return change
    return Ignored("unsupported_event")


def _occurred(iat: float, received_at: float | None) -> float:
    """When the signal happened, for "sessions that began by then": ``iat`` names only its
    whole second, so a session that began later in that second, before the signal reached us,
    would be taken for newer than it. The end of that second, but never later than the signal
    reached us (nor earlier than ``iat``)."""
    if received_at is None:
        return iat
    return max(iat, min(iat + 1.0 - 1e-6, received_at))


def _base(event: SecurityEvent, trust: Trust, received_at: float | None) -> dict[str, Any]:
    tenant = _member(event.subject, "tenant")
    if tenant is not None and (tenant.get("format") != OPAQUE or tenant.get("id") != trust.tenant):
        raise Refused(ACCESS_DENIED, f"transmitter {trust.name} may not act on this tenant")
    return {
        "event_id": str(event_id(event.issuer, event.jti)),
        "occurred_at": datetime.fromtimestamp(_occurred(event.iat, received_at), UTC).isoformat(),
        "user_id": _user(event.subject),
        "tenant": trust.tenant,
        "source": f"ssf:{trust.name}",
    }


def _member(subject: dict[str, Any], name: str) -> dict[str, Any] | None:
    if subject.get("format") != COMPLEX:
        return None
    found = subject.get(name)
    return found if isinstance(found, dict) else None


def _user(subject: dict[str, Any]) -> str:
    user = _member(subject, "user") if subject.get("format") == COMPLEX else subject
    fmt = None if user is None else user.get("format")
    if user is not None and fmt == ISS_SUB:
        return str(user["sub"])
    if user is not None and fmt == OPAQUE:
        return str(user["id"])
    if user is not None and fmt == EMAIL:
        return str(user["email"])
    raise Refused(INVALID_REQUEST, "the subject names no user (iss_sub, opaque or email)")


def _opaque(member: dict[str, Any], name: str) -> str:
    if member.get("format") != OPAQUE:
        raise Refused(INVALID_REQUEST, f"the subject's {name} must be an opaque identifier")
    return str(member["id"])


def _level_key(event: SecurityEvent) -> str | None:
    level = event.payload.get("current_level")
    if not isinstance(level, str):
        return None
    if event.event_type == v.RISK_LEVEL_CHANGE:
        return f"risk:{level}".lower()
    namespace = event.payload.get("namespace")
    return f"{namespace}:{level}".lower() if isinstance(namespace, str) else None
