"""Input records consumed from the auth.events topic, discriminated by ``type``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from sessionwarden.contracts.base import (
    EventBase,
    InputAction,
    InputAuthMethod,
    InputIdentifier,
    InputIpAddress,
    InputPermissionList,
    InputResource,
    InputRoleList,
    InputSessionId,
    InputUserAgent,
    Profile,
    UtcDatetime,
)

__all__ = [
    "AUTH_EVENT_ADAPTER",
    "AUTH_EVENT_MODELS",
    "AUTH_EVENT_TYPES",
    "Activity",
    "AuthEvent",
    "Login",
    "Logout",
    "RiskChange",
    "RoleChange",
    "SessionRevoked",
    "SignalKind",
    "UserRevoked",
]

SignalKind = Literal[
    "session_revoked",
    "sessions_revoked",
    "credential_change",
    "credential_compromise",
    "account_disabled",
    "account_purged",
]
"""The outside signal behind a revocation: CAEP session-revoked, RISC sessions-revoked, CAEP
credential-change, RISC credential-compromise, RISC account-disabled, RISC account-purged."""


class Login(EventBase):
    """A user authenticated and a session began."""

    type: Literal["login"] = "login"
    session_id: InputSessionId
    user_type: Profile
    risk_profile: Profile
    roles: InputRoleList
    permissions: InputPermissionList
    auth_method: InputAuthMethod
    auth_time: UtcDatetime
    source_ip: InputIpAddress | None = None
    user_agent: InputUserAgent | None = None


class Activity(EventBase):
    """A request made within a session; it refreshes the idle deadline."""

    type: Literal["activity"] = "activity"
    session_id: InputSessionId
    action: InputAction
    resource: InputResource = ""


class Logout(EventBase):
    """The user ended a session explicitly."""

    type: Literal["logout"] = "logout"
    session_id: InputSessionId


class RoleChange(EventBase):
    """Roles were granted to or removed from a user, affecting all of their sessions."""

    type: Literal["role_change"] = "role_change"
    roles_granted: InputRoleList = Field(default_factory=list)
    roles_removed: InputRoleList = Field(default_factory=list)
    actor: InputIdentifier


class SessionRevoked(EventBase):
    """An identity signal ended one session of the user (if it is live and theirs)."""

    type: Literal["session_revoked"] = "session_revoked"
    session_id: InputSessionId
    signal: SignalKind


class UserRevoked(EventBase):
    """An identity signal ended every session of the user that began at or before it."""

    type: Literal["user_revoked"] = "user_revoked"
    signal: SignalKind


class RiskChange(EventBase):
    """The user's (or one session's) risk profile changed: the policy's timeouts for it apply
    where they are tighter than the session's own."""

    type: Literal["risk_change"] = "risk_change"
    risk_profile: Profile
    session_id: InputSessionId | None = None
    """The one session it concerns; absent: every live session of the user."""


AuthEvent = Annotated[
    Login | Activity | Logout | RoleChange | SessionRevoked | UserRevoked | RiskChange,
    Field(discriminator="type"),
]
"""Any record on auth.events."""

AUTH_EVENT_ADAPTER: TypeAdapter[AuthEvent] = TypeAdapter(AuthEvent)

AUTH_EVENT_MODELS: tuple[type[EventBase], ...] = (
    Login,
    Activity,
    Logout,
    RoleChange,
    SessionRevoked,
    UserRevoked,
    RiskChange,
)
"""Every model on auth.events, in declaration order."""

AUTH_EVENT_TYPES: tuple[str, ...] = tuple(
    str(model.model_fields["type"].default) for model in AUTH_EVENT_MODELS
)
"""The ``type`` tags accepted on auth.events, in declaration order."""
