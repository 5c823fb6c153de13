"""Bounded field types and the base classes shared by every wire model.

Every string and collection on the wire has an upper bound so that a hostile record
cannot inflate memory; timestamps must carry an offset and are normalised to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "MAX_PERMISSIONS",
    "MAX_ROLES",
    "Action",
    "AuthMethod",
    "EventBase",
    "FiniteFloat",
    "Identifier",
    "IpAddress",
    "NonNegativeFiniteFloat",
    "PermissionList",
    "PermissionName",
    "PolicyVersion",
    "PositiveFiniteFloat",
    "PrivilegeLevel",
    "Profile",
    "Resource",
    "RoleList",
    "RoleName",
    "SessionId",
    "UserAgent",
    "UtcDatetime",
    "WireModel",
]

MAX_ROLES = 64
MAX_PERMISSIONS = 256


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An offset-carrying timestamp, converted to UTC; naive values are rejected."""

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""user_id, tenant, actor and similar names."""
SessionId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PermissionName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Profile = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
"""user_type and risk_profile: a short lowercase slug."""
AuthMethod = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Action = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Resource = Annotated[str, StringConstraints(max_length=512)]
IpAddress = Annotated[str, StringConstraints(min_length=1, max_length=45)]
"""Kept as text: parsing into ipaddress objects costs more than the check is worth here."""
UserAgent = Annotated[str, StringConstraints(max_length=512)]
PolicyVersion = Annotated[str, StringConstraints(min_length=1, max_length=64)]

RoleList = Annotated[list[RoleName], Field(max_length=MAX_ROLES)]
PermissionList = Annotated[list[PermissionName], Field(max_length=MAX_PERMISSIONS)]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
PositiveFiniteFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFiniteFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PrivilegeLevel = Annotated[int, Field(ge=0, le=1000)]


def _require_type(schema: dict[str, Any]) -> None:
    """``type`` has a default for convenience in Python, but records on the wire must carry it."""
    required: list[str] = schema.setdefault("required", [])
    if "type" in schema.get("properties", {}) and "type" not in required:
        required.insert(0, "type")


class WireModel(BaseModel):
    """Base of every record: unknown fields are rejected and instances are immutable."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        json_schema_extra=_require_type,
    )

    type: str
    """The discriminator; each concrete model narrows it to a single literal."""
    schema_version: Literal[1] = 1


class EventBase(WireModel):
    """Fields common to every input on auth.events."""

    event_id: UUID
    occurred_at: UtcDatetime
    user_id: Identifier
    tenant: Identifier
