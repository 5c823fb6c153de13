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
    "AUTH_EVENT_TYPES",
    "Activity",
    "AuthEvent",
    "Login",
    "Logout",
    "RoleChange",
]


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


AuthEvent = Annotated[Login | Activity | Logout | RoleChange, Field(discriminator="type")]
"""Any record on auth.events."""

AUTH_EVENT_ADAPTER: TypeAdapter[AuthEvent] = TypeAdapter(AuthEvent)

AUTH_EVENT_TYPES: tuple[str, ...] = tuple(
    str(model.model_fields["type"].default) for model in (Login, Activity, Logout, RoleChange)
)
"""The ``type`` tags accepted on auth.events, in declaration order."""
