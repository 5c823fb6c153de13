"""Our records as the causes of Security Event Tokens: which event, about whom, when, and the jti.

Pure: no I/O, no clock. :func:`cause_of` maps one record the enforcer or the anomaly detectors
emit onto a :class:`Cause`:

=========================================  ===================  ===============================
record                                     CAEP event           initiating_entity / details
=========================================  ===================  ===============================
revocation idle_timeout, absolute_timeout  session-revoked      policy, reason_admin
revocation logout                          session-revoked      user, reason_admin
revocation permissions_revoked             session-revoked      policy, reason_admin: the roles
revocation step_up_required                session-revoked      policy, reason_admin
revocation session_limit                   session-revoked      policy, reason_admin
revocation operator                        session-revoked      admin, reason_admin
revocation signal                          session-revoked      system, reason_admin
revalidation                               token-claims-change  admin, claims: {"roles": [...]}
session_started (audit)                    session-established  user, amr when known
session_risk_changed (audit)               risk-level-change    system, principal SESSION
alert                                      risk-level-change    policy, principal USER
=========================================  ===================  ===============================

A ``session_risk_changed`` record becomes a SET only when its new risk profile is one CAEP has
a level for (``low``, ``medium``, ``high``, ``critical``: LOW, MEDIUM, HIGH, HIGH, as for
alerts); ``previous_level`` is given when the old profile has one too.

``txn`` is the id of the cause, shared by all SETs of one cause: the input event (logout, role
change) when there is one, else the record's own id. :func:`jti` is derived from the issuer,
the record id, the event type and the audience, so a re-emitted record yields the same jti
(on the CAEP topic, on every push retry, after every restart) and receivers drop the
duplicate. Times are integer NumericDates: ``event_timestamp`` is the time of the cause (a
revocation's ``effective_at``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from sessionwarden.contracts.outputs import (
    AUDIT_EVENT_ADAPTER,
    REVOCATION_RECORD_ADAPTER,
    Alert,
    Revalidation,
    Revocation,
    SessionRiskChanged,
    SessionStarted,
)
from sessionwarden.ssf.tokens import SetError
from sessionwarden.ssf.vocabulary import (
    RISK_LEVEL_CHANGE,
    SESSION_ESTABLISHED,
    SESSION_REVOKED,
    TOKEN_CLAIMS_CHANGE,
)

# Fixed: the same record, event type and audience always give the same jti.
_JTI_NAMESPACE: Final = uuid.UUID("0b7f3c52-8d6e-4a4b-9f0e-2c1d5e7a9b31")
_ALERT_ADAPTER: TypeAdapter[Alert] = TypeAdapter(Alert)

SESSION_RECORD_TYPES: Final = frozenset(
    {"revocation", "revalidation", "session_started", "session_risk_changed"}
)
"""Records that become session events (the enforcer's transmitter signs these)."""
ALERT_RECORD_TYPES: Final = frozenset({"alert"})
"""Records that become risk-level-change (the detectors sign these, with a key of their own)."""

_REVOKED: Final[dict[str, tuple[str, str]]] = {
    "idle_timeout": ("policy", "Idle timeout reached"),
    "absolute_timeout": ("policy", "Absolute session lifetime reached"),
    "logout": ("user", "User logged out"),
    "permissions_revoked": ("policy", "Roles removed"),
    "step_up_required": ("policy", "Step-up authentication required for a high-risk operation"),
    "session_limit": ("policy", "Concurrent session limit reached; oldest session ended"),
    "operator": ("admin", "Ended by an operator command"),
    "signal": ("system", "Ended on an identity signal"),
}
_RISK_LEVEL: Final = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "critical": "HIGH"}
# auth_method values with an exact RFC 8176 "amr" counterpart; others are left out.
_AMR: Final = {
    "password": "pwd",
    "pwd": "pwd",
    "otp": "otp",
    "totp": "otp",
    "sms": "sms",
    "pin": "pin",
    "mfa": "mfa",
    "hwk": "hwk",
    "swk": "swk",
    "face": "face",
    "fpt": "fpt",
}


@dataclass(frozen=True, slots=True)
class Cause:
    """What one record tells: the event, its subject, its ids and its time."""

    user_id: str
    tenant: str
    session_id: str | None  # None for alerts, whose principal is the user
    record_id: str
    txn: str
    issued_at: float
    event_type: str
    event: dict[str, Any]


def jti(issuer: str, cause: Cause, audience: str) -> str:
    """The SET's id: the same issuer, cause and audience always give the same one."""
    name = "|".join((issuer, cause.event_type, cause.record_id, audience))
    return uuid.uuid5(_JTI_NAMESPACE, name).hex


def numeric_date(value: float | datetime) -> int:
    seconds = value.timestamp() if isinstance(value, datetime) else value
    return math.floor(seconds)


def cause_of(record: Mapping[str, Any], signs: frozenset[str]) -> Cause | None:
    """The cause of one record, or None for a record type without an event. Raises SetError
    for an invalid record or one of a type outside ``signs``."""
    kind = str(record.get("type"))
    builder = _BUILDERS.get(kind)
    if builder is None:
        return None
    if kind not in signs:
        raise SetError(f"this transmitter does not sign {kind} records")
    try:
        return builder(record)  # None: this record has no CAEP counterpart
    except ValidationError as exc:
        raise SetError(f"invalid {record.get('type')} record: {exc.errors()[0]['msg']}") from exc


def _from_revocation_record(record: Mapping[str, Any]) -> Cause:
    parsed = REVOCATION_RECORD_ADAPTER.validate_python(record)
    if isinstance(parsed, Revocation):
        return _revoked(parsed)
    return _claims_changed(parsed)


def _revoked(rec: Revocation) -> Cause:
    entity, text = _REVOKED[rec.reason]
    if rec.reason == "permissions_revoked" and rec.roles_removed:
        text = f"{text}: {', '.join(rec.roles_removed)}"
    event = {"initiating_entity": entity, "reason_admin": {"en": text}}
    return _session_cause(rec, str(rec.revocation_id), SESSION_REVOKED, event)


def _claims_changed(rec: Revalidation) -> Cause:
    event = {
        "initiating_entity": "admin",
        "reason_admin": {"en": "Roles granted: " + ", ".join(rec.roles_granted)},
        "claims": {"roles": list(rec.roles)},
    }
    return _session_cause(rec, str(rec.revalidation_id), TOKEN_CLAIMS_CHANGE, event)


def _session_cause(
    rec: Revocation | Revalidation, record_id: str, event_type: str, event: dict[str, Any]
) -> Cause:
    """A session's SET: txn is the causing event (or the record itself), time is the cause."""
    return Cause(
        user_id=rec.user_id,
        tenant=rec.tenant,
        session_id=rec.session_id,
        record_id=record_id,
        txn=str(rec.cause_event_id) if rec.cause_event_id is not None else record_id,
        issued_at=rec.emitted_at.timestamp(),
        event_type=event_type,
        event={"event_timestamp": numeric_date(rec.effective_at), **event},
    )


def _established(record: Mapping[str, Any]) -> Cause:
    rec = AUDIT_EVENT_ADAPTER.validate_python(record)
    if not isinstance(rec, SessionStarted):  # dispatch is on the type tag; this narrows it
        raise SetError(f"expected session_started, got {rec.type}")
    event: dict[str, Any] = {
        "event_timestamp": numeric_date(rec.occurred_at),
        "initiating_entity": "user",
    }
    amr = _AMR.get(rec.auth_method.lower())
    if amr is not None:
        event["amr"] = [amr]
    return Cause(
        user_id=rec.user_id,
        tenant=rec.tenant,
        session_id=rec.session_id,
        record_id=str(rec.event_id),
        txn=str(rec.event_id),
        issued_at=rec.occurred_at.timestamp(),
        event_type=SESSION_ESTABLISHED,
        event=event,
    )


def _risk_changed(record: Mapping[str, Any]) -> Cause:
    rec = _ALERT_ADAPTER.validate_python(record)
    event: dict[str, Any] = {
        "event_timestamp": numeric_date(rec.last_seen),
        "initiating_entity": "policy",
        "principal": "USER",
        "current_level": _RISK_LEVEL[rec.severity],
        "risk_reason": rec.kind,
    }
    if rec.summary:
        event["reason_admin"] = {"en": rec.summary}
    return Cause(
        user_id=rec.user_id,
        tenant=rec.tenant,
        session_id=None,
        record_id=str(rec.alert_id),
        txn=str(rec.alert_id),
        issued_at=rec.emitted_at.timestamp(),
        event_type=RISK_LEVEL_CHANGE,
        event=event,
    )


def _session_risk_changed(record: Mapping[str, Any]) -> Cause | None:
    rec = AUDIT_EVENT_ADAPTER.validate_python(record)
    if not isinstance(rec, SessionRiskChanged):  # dispatch is on the type tag; this narrows it
        raise SetError(f"expected session_risk_changed, got {rec.type}")
    level = _RISK_LEVEL.get(rec.risk_profile)
    if level is None:
        return None  # a profile CAEP has no level for
    event: dict[str, Any] = {
        "event_timestamp": numeric_date(rec.occurred_at),
        "initiating_entity": "system",
        "principal": "SESSION",
        "current_level": level,
        "risk_reason": "risk_change",
        "reason_admin": {"en": f"Session timeouts tightened for risk profile {rec.risk_profile}"},
    }
    previous = _RISK_LEVEL.get(rec.risk_profile_before)
    if previous is not None:
        event["previous_level"] = previous
    return Cause(
        user_id=rec.user_id,
        tenant=rec.tenant,
        session_id=rec.session_id,
        record_id=str(rec.event_id),
        txn=str(rec.cause_event_id),
        issued_at=rec.occurred_at.timestamp(),
        event_type=RISK_LEVEL_CHANGE,
        event=event,
    )


_BUILDERS: Final[dict[str, Callable[[Mapping[str, Any]], Cause | None]]] = {
    "revocation": _from_revocation_record,
    "revalidation": _from_revocation_record,
    "session_started": _established,
    "session_risk_changed": _session_risk_changed,
    "alert": _risk_changed,
}
