"""Records Sessionwarden produces: revocations, audit events, alerts and dead letters.

Topics and keys:
  sessionwarden.revocations  Revocation | Revalidation, keyed by ["tenant","session_id"] (JSON)
  sessionwarden.audit        AuditEvent, keyed by user_id
  sessionwarden.alerts       Alert, keyed by user_id
  sessionwarden.dlq          DeadLetter
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from sessionwarden.contracts.base import (
    MAX_ROLES,
    Action,
    AuthMethod,
    FiniteFloat,
    Identifier,
    IpAddress,
    NonNegativeFiniteFloat,
    PermissionList,
    PolicyVersion,
    PositiveFiniteFloat,
    PrivilegeLevel,
    Profile,
    Resource,
    RoleList,
    RoleName,
    SessionId,
    UtcDatetime,
    WireModel,
    omitted_when_none,
)
from sessionwarden.contracts.inputs import SignalKind

__all__ = [
    "AUDIT_EVENT_ADAPTER",
    "MAX_DETAIL_CHARS",
    "MAX_RAW_B64_CHARS",
    "REVOCATION_RECORD_ADAPTER",
    "ActivityAfterRevocation",
    "Alert",
    "AlertEvidence",
    "AlertKind",
    "AlertSeverity",
    "AuditBase",
    "AuditEvent",
    "DeadLetter",
    "DeadLetterReason",
    "EndedSessionUsed",
    "ForeignSessionEvent",
    "HighRiskOperation",
    "LoginAfterLogout",
    "OperatorCommandApplied",
    "Revalidation",
    "Revocation",
    "RevocationReason",
    "RevocationRecord",
    "RoleChanged",
    "SessionEnded",
    "SessionRiskChanged",
    "SessionStarted",
    "UserRecord",
]

RevocationReason = Literal[
    "idle_timeout",
    "absolute_timeout",
    "logout",
    "permissions_revoked",
    "step_up_required",
    "session_limit",
    "operator",
    "signal",
]
"""Why a session ended. ``session_limit``: a newer login of its user went past the policy's
``max_sessions_per_user``, and this was the user's oldest live session. ``operator``: an
operator command ended it (sessionwarden.commands; its ``operator_command_applied`` audit
record names the operator and the reason). ``signal``: an identity signal on auth.events
(``session_revoked``, ``user_revoked``) ended it; its ``session_ended`` audit record names the
signal and its source."""
AlertKind = Literal[
    "repeated_expirations",
    "privilege_escalation",
    "ended_session_used",
    "concurrent_sessions",
    "foreign_session_event",
]
AlertSeverity = Literal["low", "medium", "high", "critical"]
DeadLetterReason = Literal[
    "undecodable",
    "schema_violation",
    "unknown_type",
    "oversized",
    "future_timestamp",
    "key_mismatch",
    "internal_error",
    "operator_not_allowed",
]

MAX_DETAIL_CHARS = 2048
MAX_RAW_B64_CHARS = 1_500_000
"""Base64 of a record up to the broker's default 1 MB message size, with headroom."""

_MAX_EVIDENCE_ITEMS = 256
_MAX_COUNTS = 32
_INT64_MAX = 2**63 - 1

Count = Annotated[int, Field(ge=0, le=_INT64_MAX)]
"""A non-negative integer that always fits the 64-bit range the JSON encoder accepts."""

CountName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Summary = Annotated[str, StringConstraints(max_length=512)]
Detail = Annotated[str, StringConstraints(max_length=MAX_DETAIL_CHARS)]
TopicName = Annotated[str, StringConstraints(min_length=1, max_length=249)]
Base64Text = Annotated[str, StringConstraints(max_length=MAX_RAW_B64_CHARS)]


class UserRecord(WireModel):
    """An output about one user of one tenant."""

    user_id: Identifier
    tenant: Identifier


# --- sessionwarden.revocations -------------------------------------------------------------


class Revocation(UserRecord):
    """A session must be terminated now; downstream gateways drop its tokens."""

    type: Literal["revocation"] = "revocation"
    revocation_id: UUID
    session_id: SessionId
    reason: RevocationReason
    effective_at: UtcDatetime
    """The deadline that passed, or the time of the event that caused the revocation."""
    emitted_at: UtcDatetime
    roles: RoleList
    permissions: PermissionList
    roles_removed: RoleList = Field(default_factory=list)
    policy_version: PolicyVersion
    cause_event_id: UUID | None = None


class Revalidation(UserRecord):
    """A live session gained roles; downstream caches must re-read its grants."""

    type: Literal["revalidation"] = "revalidation"
    revalidation_id: UUID
    session_id: SessionId
    roles_granted: RoleList
    roles: RoleList
    """The session's roles after the change."""
    effective_at: UtcDatetime
    emitted_at: UtcDatetime
    policy_version: PolicyVersion
    cause_event_id: UUID | None = None


RevocationRecord = Annotated[Revocation | Revalidation, Field(discriminator="type")]
REVOCATION_RECORD_ADAPTER: TypeAdapter[RevocationRecord] = TypeAdapter(RevocationRecord)


# --- sessionwarden.audit -------------------------------------------------------------------


class AuditBase(UserRecord):
    """Fields common to every audit event."""

    event_id: UUID
    occurred_at: UtcDatetime


class SessionStarted(AuditBase):
    """A session was admitted with the timeouts its policy assigned."""

    type: Literal["session_started"] = "session_started"
    session_id: SessionId
    user_type: Profile
    risk_profile: Profile
    auth_method: AuthMethod
    roles: RoleList
    privilege_level: PrivilegeLevel
    idle_timeout_s: PositiveFiniteFloat
    absolute_timeout_s: PositiveFiniteFloat
    absolute_deadline: UtcDatetime
    source_ip: IpAddress | None = None
    auth_time: UtcDatetime | None = None
    """The authentication time the login claimed."""
    auth_time_untrusted: bool = False
    """The claimed authentication time is later than the login itself (or than its receive
    time): the session has no fresh authentication and every step-up check fails."""


class SessionEnded(AuditBase):
    """A session ended, by logout or by enforcement."""

    type: Literal["session_ended"] = "session_ended"
    session_id: SessionId
    reason: RevocationReason
    started_at: UtcDatetime
    ended_at: UtcDatetime
    duration_s: NonNegativeFiniteFloat
    signal: SignalKind | None = omitted_when_none()
    """The identity signal that ended it (reason ``signal``); absent otherwise."""
    source: Identifier | None = omitted_when_none()
    """Who reported that signal (the event's ``source``), when it said."""


class RoleChanged(AuditBase):
    """A user's roles changed; records the privilege delta and the sessions it reached."""

    type: Literal["role_changed"] = "role_changed"
    roles_granted: RoleList = Field(default_factory=list)
    roles_removed: RoleList = Field(default_factory=list)
    actor: Identifier
    privilege_before: PrivilegeLevel
    privilege_after: PrivilegeLevel
    sensitive_granted: RoleList = Field(default_factory=list)
    live_sessions: Count


class EndedSessionUsed(AuditBase):
    """Activity arrived for a session that had ended or was never seen."""

    type: Literal["ended_session_used"] = "ended_session_used"
    session_id: SessionId
    action: Action
    resource: Resource = ""
    session_state: Literal["ended", "unknown"]
    ended_reason: RevocationReason | None = None


class HighRiskOperation(AuditBase):
    """A sensitive action was checked against the age of the session's authentication."""

    type: Literal["high_risk_operation"] = "high_risk_operation"
    session_id: SessionId
    action: Action
    resource: Resource = ""
    auth_age_s: FiniteFloat | None
    """None when the session's authentication time is not trusted (see SessionStarted)."""
    max_auth_age_s: FiniteFloat
    allowed: bool


class ActivityAfterRevocation(AuditBase):
    """Activity made before its session's deadline but appended after the deadline fired (a
    producer delay beyond the budget); the session stays ended. ``occurred_at`` is the
    activity's effective time."""

    type: Literal["activity_after_revocation"] = "activity_after_revocation"
    session_id: SessionId
    action: Action
    resource: Resource = ""
    delay_s: NonNegativeFiniteFloat
    """Receive (broker append) time minus the activity's effective time."""
    deadline: UtcDatetime
    reason: RevocationReason
    cause_event_id: UUID


class LoginAfterLogout(AuditBase):
    """A login read after a logout of the same session: the session never goes live."""

    type: Literal["login_after_logout"] = "login_after_logout"
    session_id: SessionId
    logout_at: UtcDatetime
    cause_event_id: UUID


class ForeignSessionEvent(AuditBase):
    """An event named a session owned by another user of the tenant and changed nothing: a
    possible stolen session id. ``user_id`` is the claimant, ``owner_user_id`` the owner."""

    type: Literal["foreign_session_event"] = "foreign_session_event"
    session_id: SessionId
    event_type: Literal["login", "activity", "logout"]
    owner_user_id: Identifier
    session_state: Literal["live", "ended"]
    action: Action | None = None
    cause_event_id: UUID


class OperatorCommandApplied(AuditBase):
    """An operator command was applied on one partition: ``revoked`` sessions ended there (0:
    the tenant, user or session is not live on it). ``user_id`` is the operator, the actor of
    the record; the target is ``target_user_id`` / ``target_session_id`` (or the tenant). A
    command without a user reaches every partition: each writes one record."""

    type: Literal["operator_command_applied"] = "operator_command_applied"
    command_id: UUID
    scope: Literal["session", "user", "all_users"]
    target_user_id: Identifier | None = None
    target_session_id: SessionId | None = None
    reason_admin: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    issued_at: UtcDatetime
    partition: Count
    revoked: Count
    complete: bool = True
    """False: a share of a large command, committed in one transaction; more records of the
    same command and partition follow, the last one ``complete``. The sessions it ended are
    the sum of their ``revoked``."""


class SessionRiskChanged(AuditBase):
    """A ``risk_change`` tightened a live session's timeouts: the policy's timeouts for the new
    risk profile, where they are tighter than the session's own (a deadline never moves later).
    ``occurred_at`` is the change's effective time. ``ended``: a tighter deadline had passed
    already, so the session ended at that time (its ``session_ended`` record follows, reason
    ``idle_timeout`` or ``absolute_timeout``)."""

    type: Literal["session_risk_changed"] = "session_risk_changed"
    session_id: SessionId
    risk_profile_before: Profile
    risk_profile: Profile
    idle_timeout_before_s: PositiveFiniteFloat
    idle_timeout_s: PositiveFiniteFloat
    absolute_deadline_before: UtcDatetime
    absolute_deadline: UtcDatetime
    ended: bool = False
    source: Identifier | None = None
    """Who reported the risk change (the event's ``source``), when it said."""
    cause_event_id: UUID


AuditEvent = Annotated[
    SessionStarted
    | SessionEnded
    | RoleChanged
    | EndedSessionUsed
    | HighRiskOperation
    | ActivityAfterRevocation
    | LoginAfterLogout
    | ForeignSessionEvent
    | OperatorCommandApplied
    | SessionRiskChanged,
    Field(discriminator="type"),
]
AUDIT_EVENT_ADAPTER: TypeAdapter[AuditEvent] = TypeAdapter(AuditEvent)


# --- sessionwarden.alerts ------------------------------------------------------------------


class AlertEvidence(BaseModel):
    """What an alert is based on, bounded so that alerts stay small."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    event_ids: list[UUID] = Field(default_factory=list, max_length=_MAX_EVIDENCE_ITEMS)
    session_ids: list[SessionId] = Field(default_factory=list, max_length=_MAX_EVIDENCE_ITEMS)
    roles: list[RoleName] = Field(default_factory=list, max_length=MAX_ROLES)
    counts: dict[CountName, Count] = Field(default_factory=dict, max_length=_MAX_COUNTS)


class Alert(UserRecord):
    """An anomaly detected across a user's events."""

    type: Literal["alert"] = "alert"
    alert_id: UUID
    kind: AlertKind
    severity: AlertSeverity
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    evidence: AlertEvidence
    summary: Summary
    suppressed: Count = 0
    """How many identical alerts were withheld since the previous one was emitted."""
    emitted_at: UtcDatetime


# --- sessionwarden.dlq ---------------------------------------------------------------------


class DeadLetter(WireModel):
    """An input that could not be processed, kept verbatim for inspection and replay."""

    type: Literal["dead_letter"] = "dead_letter"
    reason: DeadLetterReason
    detail: Detail
    source_topic: TopicName
    source_partition: Count
    source_offset: Count
    key_b64: Base64Text | None = None
    value_b64: Base64Text
    dead_lettered_at: UtcDatetime
