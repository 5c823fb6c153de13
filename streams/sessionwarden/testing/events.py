"""Authentication events as a producer sends them (docs/CLIENTS.md): the one builder of login,
activity, logout, role-change and identity-signal documents for the tests, the benchmarks, the
simulator and the drill. Times are epoch seconds, written as ISO 8601 with an offset."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


def iso(t: float) -> str:
    """Epoch seconds as the wire's timestamp (ISO 8601, UTC offset)."""
    return datetime.fromtimestamp(t, UTC).isoformat()


def parse_ts(value: str) -> float:
    """A wire timestamp (``Z`` or an offset) as epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _head(kind: str, user: str, t: float, tenant: str, event_id: str | None) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": event_id or str(uuid.uuid4()),
        "occurred_at": iso(t),
        "user_id": user,
        "tenant": tenant,
    }


def login_doc(
    sid: str,
    user: str,
    t: float,
    roles: list[str] | None = None,
    risk: str = "medium",
    user_type: str = "customer",
    *,
    tenant: str = "acme",
    event_id: str | None = None,
    permissions: list[str] | None = None,
    auth_time: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A password login at ``t`` (authenticated then, unless ``auth_time`` says otherwise)."""
    return {
        **_head("login", user, t, tenant, event_id),
        "session_id": sid,
        "user_type": user_type,
        "risk_profile": risk,
        "roles": roles or ["viewer"],
        "permissions": permissions or [],
        "auth_method": "password",
        "auth_time": iso(t if auth_time is None else auth_time),
        **extra,
    }


def activity_doc(
    sid: str,
    user: str,
    t: float,
    action: str = "docs.read",
    *,
    tenant: str = "acme",
    resource: str = "/x",
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        **_head("activity", user, t, tenant, event_id),
        "session_id": sid,
        "action": action,
        "resource": resource,
    }


def logout_doc(
    sid: str, user: str, t: float, *, tenant: str = "acme", event_id: str | None = None
) -> dict[str, Any]:
    return {**_head("logout", user, t, tenant, event_id), "session_id": sid}


def role_change_doc(
    user: str,
    t: float,
    granted: list[str] | None = None,
    removed: list[str] | None = None,
    *,
    tenant: str = "acme",
    actor: str = "admin-7",
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        **_head("role_change", user, t, tenant, event_id),
        "roles_granted": granted or [],
        "roles_removed": removed or [],
        "actor": actor,
    }


def session_revoked_doc(
    sid: str,
    user: str,
    t: float,
    signal: str = "session_revoked",
    *,
    source: str | None = "ssf:test",
    tenant: str = "acme",
    event_id: str | None = None,
) -> dict[str, Any]:
    """An identity signal ending one session (CAEP session-revoked by default)."""
    return {
        **_head("session_revoked", user, t, tenant, event_id),
        **_source(source),
        "session_id": sid,
        "signal": signal,
    }


def user_revoked_doc(
    user: str,
    t: float,
    signal: str = "credential_compromise",
    *,
    source: str | None = "ssf:test",
    tenant: str = "acme",
    event_id: str | None = None,
) -> dict[str, Any]:
    """An identity signal ending every session of the user that began by ``t``."""
    return {**_head("user_revoked", user, t, tenant, event_id), **_source(source), "signal": signal}


def risk_change_doc(
    user: str,
    t: float,
    risk: str,
    sid: str | None = None,
    *,
    source: str | None = "ssf:test",
    tenant: str = "acme",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A new risk profile for the user's sessions (or for ``sid`` only)."""
    doc = {**_head("risk_change", user, t, tenant, event_id), **_source(source)}
    doc["risk_profile"] = risk
    if sid is not None:
        doc["session_id"] = sid
    return doc


def _source(source: str | None) -> dict[str, str]:
    return {} if source is None else {"source": source}
