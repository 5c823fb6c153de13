"""Event factories and a small test policy for the enforcer's unit tests (plain numbers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sessionwarden.contracts.inputs import (
    Activity,
    Login,
    Logout,
    RiskChange,
    RoleChange,
    SessionRevoked,
    SignalKind,
    UserRevoked,
)
from sessionwarden.policy import Policy, parse_policy

T0 = 1_800_000_000.0  # an arbitrary fixed epoch; every test time is T0 + seconds

POLICY_TOML = """
name = "unit"
clock_skew_tolerance = "30s"
hard_cap_absolute = "1d"

[defaults]
idle = "100s"
absolute = "1000s"

[user_types.admin]
idle = "50s"

[risk_profiles.high]
absolute = "400s"

[roles.viewer]
privilege = 10

[roles.editor]
privilege = 30

[roles.admin]
privilege = 90
sensitive = true

[[high_risk_operations]]
pattern = "payments.*"
max_auth_age = "60s"
idle = "20s"
"""


def policy() -> Policy:
    return parse_policy(POLICY_TOML, "unit.toml")


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def _common(
    t: float, user: str, event_id: uuid.UUID | None, tenant: str = "acme"
) -> dict[str, Any]:
    return {
        "event_id": event_id or uuid.uuid4(),
        "occurred_at": at(t),
        "user_id": user,
        "tenant": tenant,
    }


def login(
    t: float,
    sid: str = "s1",
    user: str = "u1",
    roles: tuple[str, ...] = ("viewer",),
    user_type: str = "customer",
    risk: str = "low",
    auth_age: float = 0.0,
    event_id: uuid.UUID | None = None,
    tenant: str = "acme",
) -> Login:
    return Login(
        **_common(t, user, event_id, tenant),
        session_id=sid,
        user_type=user_type,
        risk_profile=risk,
        roles=list(roles),
        permissions=[f"{r}:read" for r in roles],
        auth_method="password",
        auth_time=at(t - auth_age),
        source_ip="192.0.2.1",
    )


def activity(
    t: float,
    sid: str = "s1",
    user: str = "u1",
    action: str = "docs.read",
    event_id: uuid.UUID | None = None,
    tenant: str = "acme",
) -> Activity:
    return Activity(
        **_common(t, user, event_id, tenant), session_id=sid, action=action, resource="/r"
    )


def logout(
    t: float,
    sid: str = "s1",
    user: str = "u1",
    tenant: str = "acme",
    event_id: uuid.UUID | None = None,
) -> Logout:
    return Logout(**_common(t, user, event_id, tenant), session_id=sid)


def role_change(
    t: float,
    user: str = "u1",
    granted: tuple[str, ...] = (),
    removed: tuple[str, ...] = (),
    actor: str = "admin-1",
    event_id: uuid.UUID | None = None,
    tenant: str = "acme",
) -> RoleChange:
    return RoleChange(
        **_common(t, user, event_id, tenant),
        roles_granted=list(granted),
        roles_removed=list(removed),
        actor=actor,
    )


def session_revoked(
    t: float,
    sid: str = "s1",
    user: str = "u1",
    signal: SignalKind = "session_revoked",
    source: str | None = "ssf:idp",
    event_id: uuid.UUID | None = None,
    tenant: str = "acme",
) -> SessionRevoked:
    return SessionRevoked(
        **_common(t, user, event_id, tenant), source=source, session_id=sid, signal=signal
    )


def user_revoked(
    t: float,
    user: str = "u1",
    signal: SignalKind = "credential_compromise",
    source: str | None = "keycloak:main",
    event_id: uuid.UUID | None = None,
    tenant: str = "acme",
) -> UserRevoked:
    return UserRevoked(**_common(t, user, event_id, tenant), source=source, signal=signal)


def risk_change(
    t: float,
    risk: str = "high",
    sid: str | None = None,
    user: str = "u1",
    source: str | None = "ssf:idp",
    event_id: uuid.UUID | None = None,
    tenant: str = "acme",
) -> RiskChange:
    return RiskChange(
        **_common(t, user, event_id, tenant), source=source, risk_profile=risk, session_id=sid
    )
