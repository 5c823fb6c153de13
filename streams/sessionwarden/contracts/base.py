"""Bounded field types and the base classes shared by every wire model.

Every string and collection on the wire has an upper bound so that a hostile record
cannot inflate memory; timestamps must carry an offset and are normalised to UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

__all__ = [
    "MAX_PERMISSIONS",
    "MAX_ROLES",
    "TEXT_PATTERN",
    "TOKEN_PATTERN",
    "Action",
    "AuthMethod",
    "EventBase",
    "FiniteFloat",
    "Identifier",
    "InputAction",
    "InputAuthMethod",
    "InputIdentifier",
    "InputIpAddress",
    "InputPermissionList",
    "InputResource",
    "InputRoleList",
    "InputSessionId",
    "InputUserAgent",
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
    "omitted_when_none",
]

MAX_ROLES = 64
MAX_PERMISSIONS = 256


def _to_utc(value: datetime) -> datetime:
    """The same instant in UTC; a time whose UTC date is outside years 1-9999 is invalid."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


_date_first = re.compile(r"[0-9]{4}-").match


def _not_a_number(value: Any) -> Any:
    """A timestamp on the wire is RFC 3339 text; a Unix number has neither unit nor offset,
    and neither has one written as a string (``"1700000000"``, which pydantic would read as
    seconds): the text begins with its date."""
    if type(value) is str and _date_first(value) is not None:
        return value  # every valid timestamp: decided before the slower checks below
    if isinstance(value, int | float):
        raise ValueError("must be an RFC 3339 string with an offset, not a number")
    if isinstance(value, str) and _date_first(value) is None:
        raise ValueError("must be an RFC 3339 string with an offset, beginning with its date")
    return value


def _exact_int(value: Any) -> Any:
    """``true`` is not 1, and neither is ``"1"``: only a JSON number is a version."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number, not a boolean or a string")
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_to_utc)]
"""An offset-carrying RFC 3339 timestamp, converted to UTC; naive values and numbers are
rejected."""

_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
TOKEN_PATTERN = rf"^[^\s{_CONTROL}](?:[^{_CONTROL}]*[^\s{_CONTROL}])?$"
"""An id or name: no control character (C0, DEL, C1, line/paragraph separators) anywhere, no
whitespace at either end, at least one character. Ids end up in keys, logs and SQL settings."""
TEXT_PATTERN = rf"^[^{_CONTROL}]*$"
"""Free text (a user agent, a resource): no control characters; may be empty."""


def _token(max_length: int) -> Any:
    return StringConstraints(min_length=1, max_length=max_length, pattern=TOKEN_PATTERN)


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

# Inputs (auth.events) are written by producers we do not control: their text is held to the
# token and text patterns. Outputs are made by Sessionwarden from validated inputs.
InputIdentifier = Annotated[str, _token(128)]
InputSessionId = Annotated[str, _token(256)]
InputRoleName = Annotated[str, _token(128)]
InputPermissionName = Annotated[str, _token(128)]
InputAuthMethod = Annotated[str, _token(32)]
InputAction = Annotated[str, _token(128)]
InputResource = Annotated[str, StringConstraints(max_length=512, pattern=TEXT_PATTERN)]
InputIpAddress = Annotated[str, _token(45)]
InputUserAgent = Annotated[str, StringConstraints(max_length=512, pattern=TEXT_PATTERN)]
InputRoleList = Annotated[list[InputRoleName], Field(max_length=MAX_ROLES)]
InputPermissionList = Annotated[list[InputPermissionName], Field(max_length=MAX_PERMISSIONS)]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
PositiveFiniteFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFiniteFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PrivilegeLevel = Annotated[int, Field(ge=0, le=1000)]


def _is_none(value: Any) -> bool:
    return value is None


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
    schema_version: Annotated[Literal[1], BeforeValidator(_exact_int)] = 1


def omitted_when_none() -> Any:
    """A field default of None that the encoding leaves out (an optional field added to a
    record later: the records without it keep their bytes)."""
    return Field(default=None, exclude_if=_is_none)


class EventBase(WireModel):
    """Fields common to every input on auth.events."""

    event_id: UUID
    occurred_at: UtcDatetime
    user_id: InputIdentifier
    tenant: InputIdentifier
    source: InputIdentifier | None = omitted_when_none()
    """Who reported the event when it came from outside the applications: an identity
    provider or a signal transmitter, e.g. ``keycloak:<realm>`` or ``ssf:<transmitter>``.
    Carried into the audit records of what the event ended. Left out of the encoding when
    absent, so that records without it keep their bytes."""
