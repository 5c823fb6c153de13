"""The policy file's pydantic models: strict, frozen, every duration through parse_duration."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter
from pydantic_core import PydanticCustomError

from sessionwarden.policy.durations import DAY, HOUR, MINUTE, parse_duration

DEFAULT_HARD_CAP = 30 * DAY
MAX_HARD_CAP = 366 * DAY
DEFAULT_MAX_SESSIONS_PER_USER = 100
MAX_SESSIONS_PER_USER = 1000
"""The highest cap a policy may set: one record about a user (a role change) changes at most
this many sessions, a few thousand output records, well inside one transaction's budget."""


def _duration_field(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


Duration = Annotated[float, PlainValidator(_duration_field)]


def _session_cap(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise PydanticCustomError(
            "session_cap", "must be an integer, got {value}", {"value": repr(value)}
        )
    if value < 1:
        raise PydanticCustomError("session_cap", "must be >= 1, got {value}", {"value": value})
    if value > MAX_SESSIONS_PER_USER:
        raise PydanticCustomError(
            "session_cap",
            "must be <= {cap}, got {value}",
            {"cap": MAX_SESSIONS_PER_USER, "value": value},
        )
    return value


SessionCap = Annotated[int, PlainValidator(_session_cap)]
Label = Annotated[str, Field(strict=True, min_length=1)]
Count = Annotated[int, Field(strict=True, ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutDefaults(_Strict):
    idle: Duration
    absolute: Duration


class TimeoutOverride(_Strict):
    idle: Duration | None = None
    absolute: Duration | None = None


class RoleSpec(_Strict):
    privilege: Annotated[int, Field(strict=True, ge=0, le=1000)]
    sensitive: Annotated[bool, Field(strict=True)] = False


class HighRiskRule(_Strict):
    pattern: Label
    max_auth_age: Duration
    idle: Duration | None = None


class RepeatedExpirations(_Strict):
    count: Count = 3
    window: Duration = HOUR


class Escalation(_Strict):
    min_levels: Count = 2
    window: Duration = 10 * MINUTE
    high_risk_within: Duration = 5 * MINUTE


class ConcurrentSessions(_Strict):
    max: Count = 5


class AnomalySettings(_Strict):
    repeated_expirations: RepeatedExpirations = Field(default_factory=RepeatedExpirations)
    escalation: Escalation = Field(default_factory=Escalation)
    concurrent_sessions: ConcurrentSessions = Field(default_factory=ConcurrentSessions)
    cooldown: Duration = 15 * MINUTE


class PolicyDocument(_Strict):
    name: Label
    hard_cap_absolute: Duration = DEFAULT_HARD_CAP
    clock_skew_tolerance: Duration = 2 * MINUTE
    max_sessions_per_user: SessionCap = DEFAULT_MAX_SESSIONS_PER_USER
    defaults: TimeoutDefaults
    user_types: dict[str, TimeoutOverride] = Field(default_factory=dict)
    risk_profiles: dict[str, TimeoutOverride] = Field(default_factory=dict)
    roles: dict[str, RoleSpec] = Field(default_factory=dict)
    high_risk_operations: tuple[HighRiskRule, ...] = ()
    anomaly: AnomalySettings = Field(default_factory=AnomalySettings)


_MODELS: tuple[type[BaseModel], ...] = (
    PolicyDocument,
    TimeoutDefaults,
    TimeoutOverride,
    RoleSpec,
    HighRiskRule,
    AnomalySettings,
    RepeatedExpirations,
    Escalation,
    ConcurrentSessions,
)
KNOWN_KEYS = sorted({name for model in _MODELS for name in model.model_fields})
"""Every key a policy file may use, for "did you mean" hints."""
DURATION: TypeAdapter[float] = TypeAdapter(Duration)
