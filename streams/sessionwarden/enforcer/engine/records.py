"""Builders of the enforcer's output records as plain dicts (the hot path encodes dicts with the
codec's fixed orjson options; tests validate every builder against the pydantic models)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from sessionwarden.contracts.commands import OperatorCommand
from sessionwarden.contracts.inputs import Activity, Login, Logout, RiskChange, RoleChange
from sessionwarden.enforcer.engine.sessions import Ended, Session
from sessionwarden.policy.durations import millis

# Fixed namespace: the same cause always yields the same id, across processes and restarts.
NAMESPACE = uuid.UUID("5f0c3b7e-3a51-4d1e-9a8e-6b2b1d0c9e11")


def ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


_NS = NAMESPACE.bytes


def stable_id(*parts: object) -> str:
    """uuid5(NAMESPACE, the compact JSON array of the parts) in its text form, without building
    a UUID object (the hot path emits one per session start and end). JSON keeps any tenant
    or session id apart from its neighbours, whatever characters it holds."""
    h = hashlib.sha1(_NS + orjson.dumps(parts)).hexdigest()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def revocation(
    sess: Session,
    reason: str,
    effective_at: float,
    now: float,
    policy_version: str,
    cause_event_id: UUID | None = None,
    roles_removed: Iterable[str] = (),
) -> dict[str, Any]:
    return {
        "type": "revocation",
        "schema_version": 1,
        "revocation_id": stable_id("revocation", *sess.key, reason, millis(effective_at)),
        "session_id": sess.session_id,
        "user_id": sess.user_id,
        "tenant": sess.tenant,
        "reason": reason,
        "effective_at": ts(effective_at),
        "emitted_at": ts(now),
        "roles": list(sess.roles),
        "permissions": list(sess.permissions),
        "roles_removed": list(roles_removed),
        "policy_version": policy_version,
        "cause_event_id": cause_event_id,
    }


def revalidation(
    sess: Session,
    granted: Iterable[str],
    effective_at: float,
    now: float,
    policy_version: str,
    cause_event_id: UUID,
) -> dict[str, Any]:
    return {
        "type": "revalidation",
        "schema_version": 1,
        "revalidation_id": stable_id("revalidation", *sess.key, cause_event_id),
        "session_id": sess.session_id,
        "user_id": sess.user_id,
        "tenant": sess.tenant,
        "roles_granted": list(granted),
        "roles": list(sess.roles),
        "effective_at": ts(effective_at),
        "emitted_at": ts(now),
        "policy_version": policy_version,
        "cause_event_id": cause_event_id,
    }


def _audit(kind: str, event_id: str, user_id: str, tenant: str, at: float) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": kind,
        "schema_version": 1,
        "user_id": user_id,
        "tenant": tenant,
        "occurred_at": ts(at),
    }


def session_started(
    sess: Session, auth_method: str, privilege: int, source_ip: str | None, claimed: float
) -> dict[str, Any]:
    doc = _audit(
        "session_started",
        stable_id("started", *sess.key),
        sess.user_id,
        sess.tenant,
        sess.login_at,
    )
    doc.update(
        session_id=sess.session_id,
        user_type=sess.user_type,
        risk_profile=sess.risk_profile,
        auth_method=auth_method,
        roles=list(sess.roles),
        privilege_level=privilege,
        idle_timeout_s=sess.idle_timeout,
        absolute_timeout_s=sess.absolute_deadline - sess.login_at,
        absolute_deadline=ts(sess.absolute_deadline),
        source_ip=source_ip,
        auth_time=ts(claimed),
        auth_time_untrusted=sess.auth_time is None,
    )
    return doc


def session_ended(
    sess: Session, ended: Ended, signal: tuple[str, str | None] | None = None
) -> dict[str, Any]:
    """``signal``: the (kind, source) of the identity signal that ended it, added then only, so
    that the other records keep their size."""
    doc = _audit(
        "session_ended",
        stable_id("ended", *sess.key),
        sess.user_id,
        sess.tenant,
        ended.ended_at,
    )
    doc.update(
        session_id=sess.session_id,
        reason=ended.reason,
        started_at=ts(sess.login_at),
        ended_at=ts(ended.ended_at),
        duration_s=max(0.0, ended.ended_at - sess.login_at),
    )
    if signal is not None:
        kind, source = signal
        doc["signal"] = kind
        if source is not None:
            doc["source"] = source
    return doc


def session_risk_changed(
    ev: RiskChange,
    sess: Session,
    at: float,
    before: tuple[str, float, float],
    ended: bool,
) -> dict[str, Any]:
    """A risk change tightened ``sess`` (already changed); ``before`` is its (risk profile,
    idle timeout, absolute deadline) until then."""
    profile, idle, absolute = before
    doc = _audit(
        "session_risk_changed",
        stable_id("risk_changed", *sess.key, ev.event_id),
        sess.user_id,
        sess.tenant,
        at,
    )
    doc.update(
        session_id=sess.session_id,
        risk_profile_before=profile,
        risk_profile=sess.risk_profile,
        idle_timeout_before_s=idle,
        idle_timeout_s=sess.idle_timeout,
        absolute_deadline_before=ts(absolute),
        absolute_deadline=ts(sess.absolute_deadline),
        ended=ended,
        source=ev.source,
        cause_event_id=ev.event_id,
    )
    return doc


def role_changed(
    ev: RoleChange,
    at: float,
    privilege_before: int,
    privilege_after: int,
    sensitive_granted: list[str],
    live_sessions: int,
) -> dict[str, Any]:
    doc = _audit(
        "role_changed", stable_id("role_changed", ev.tenant, ev.event_id), ev.user_id, ev.tenant, at
    )
    doc.update(
        roles_granted=list(ev.roles_granted),
        roles_removed=list(ev.roles_removed),
        actor=ev.actor,
        privilege_before=privilege_before,
        privilege_after=privilege_after,
        sensitive_granted=sensitive_granted,
        live_sessions=live_sessions,
    )
    return doc


def ended_session_used(ev: Activity, at: float, ended: Ended | None) -> dict[str, Any]:
    doc = _audit(
        "ended_session_used", stable_id("used", ev.tenant, ev.event_id), ev.user_id, ev.tenant, at
    )
    doc.update(
        session_id=ev.session_id,
        action=ev.action,
        resource=ev.resource,
        session_state="ended" if ended is not None else "unknown",
        ended_reason=ended.reason if ended is not None else None,
    )
    return doc


def high_risk_operation(
    ev: Activity, sess: Session, at: float, max_auth_age: float, allowed: bool
) -> dict[str, Any]:
    doc = _audit(
        "high_risk_operation",
        stable_id("high_risk", ev.tenant, ev.event_id),
        sess.user_id,
        sess.tenant,
        at,
    )
    doc.update(
        session_id=sess.session_id,
        action=ev.action,
        resource=ev.resource,
        # None: the session's authentication time is not trusted; otherwise never clamped
        auth_age_s=None if sess.auth_time is None else at - sess.auth_time,
        max_auth_age_s=max_auth_age,
        allowed=allowed,
    )
    return doc


def activity_after_revocation(
    ev: Activity, at: float, received: float, ended: Ended
) -> dict[str, Any]:
    doc = _audit(
        "activity_after_revocation",
        stable_id("after_revocation", ev.tenant, ev.event_id),
        ev.user_id,
        ev.tenant,
        at,
    )
    doc.update(
        session_id=ev.session_id,
        action=ev.action,
        resource=ev.resource,
        delay_s=max(0.0, received - at),
        deadline=ts(ended.ended_at),
        reason=ended.reason,
        cause_event_id=ev.event_id,
    )
    return doc


def login_after_logout(ev: Login, at: float, marker: Ended) -> dict[str, Any]:
    doc = _audit(
        "login_after_logout",
        stable_id("login_after_logout", ev.tenant, ev.event_id),
        ev.user_id,
        ev.tenant,
        at,
    )
    doc.update(session_id=ev.session_id, logout_at=ts(marker.ended_at), cause_event_id=ev.event_id)
    return doc


def foreign_session_event(
    ev: Login | Activity | Logout, at: float, target: Session | Ended
) -> dict[str, Any]:
    doc = _audit(
        "foreign_session_event",
        stable_id("foreign", ev.tenant, ev.event_id),
        ev.user_id,
        ev.tenant,
        at,
    )
    doc.update(
        session_id=ev.session_id,
        event_type=ev.type,
        owner_user_id=target.user_id,
        session_state="live" if isinstance(target, Session) else "ended",
        action=ev.action if isinstance(ev, Activity) else None,
        cause_event_id=ev.event_id,
    )
    return doc


def operator_command_applied(
    cmd: OperatorCommand,
    at: float,
    partition: int,
    revoked: int,
    complete: bool = True,
    first: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The audit of one command (or of one batch's share of it, ``complete`` False but for the
    last) on one partition; its id is the same on every replay of the same state."""
    doc = _audit(
        "operator_command_applied",
        stable_id("operator_command", cmd.tenant, cmd.command_id, partition, first),
        cmd.operator,
        cmd.tenant,
        at,
    )
    doc.update(
        command_id=cmd.command_id,
        scope=cmd.scope,
        target_user_id=cmd.user_id,
        target_session_id=cmd.session_id,
        reason_admin=cmd.reason_admin,
        issued_at=cmd.issued_at,
        partition=partition,
        revoked=revoked,
        complete=complete,
    )
    return doc
