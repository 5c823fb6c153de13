"""In-memory state of one input partition, and its changelog encoding.

Plain slotted objects, not pydantic models: a live session costs a few hundred bytes and
activity only rewrites ``last_activity``. Times are float seconds since the epoch (event time).

Changelog keys carry a kind prefix: ``s|<session_id>`` for a session (live or ended) and
``u|<user_id>`` for a user's roles and recent role-change ids. Values are compact JSON arrays;
``None`` means a tombstone.
"""

from __future__ import annotations

from typing import Any

import orjson

SESSION_PREFIX = "s|"
USER_PREFIX = "u|"
RECENT_CHANGES = 16  # role-change event ids kept per user for durable de-duplication


class Session:
    """A live session."""

    __slots__ = (
        "absolute_deadline",
        "auth_time",
        "idle_timeout",
        "last_activity",
        "login_at",
        "permissions",
        "risk_profile",
        "roles",
        "session_id",
        "tenant",
        "user_id",
        "user_type",
    )

    def __init__(
        self,
        session_id: str,
        user_id: str,
        tenant: str,
        user_type: str,
        risk_profile: str,
        login_at: float,
        last_activity: float,
        auth_time: float,
        idle_timeout: float,
        absolute_deadline: float,
        roles: tuple[str, ...],
        permissions: tuple[str, ...],
    ) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.tenant = tenant
        self.user_type = user_type
        self.risk_profile = risk_profile
        self.login_at = login_at
        self.last_activity = last_activity
        self.auth_time = auth_time
        self.idle_timeout = idle_timeout
        self.absolute_deadline = absolute_deadline
        self.roles = roles
        self.permissions = permissions

    @property
    def idle_deadline(self) -> float:
        return self.last_activity + self.idle_timeout

    def deadline(self) -> tuple[float, str]:
        """The earlier of both deadlines and its reason (absolute wins a tie)."""
        idle = self.last_activity + self.idle_timeout
        if self.absolute_deadline <= idle:
            return self.absolute_deadline, "absolute_timeout"
        return idle, "idle_timeout"

    def to_row(self) -> list[Any]:
        return [
            self.session_id,
            self.user_id,
            self.tenant,
            self.user_type,
            self.risk_profile,
            self.login_at,
            self.last_activity,
            self.auth_time,
            self.idle_timeout,
            self.absolute_deadline,
            self.roles,
            self.permissions,
        ]


class Ended:
    """What remains of a session after it ended: enough to refuse resurrection and to tell
    activity on an ended session from activity on an unknown one. Kept until ``forget_at``."""

    __slots__ = ("ended_at", "forget_at", "reason", "session_id", "tenant", "user_id")

    def __init__(
        self,
        session_id: str,
        user_id: str,
        tenant: str,
        reason: str,
        ended_at: float,
        forget_at: float,
    ) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.tenant = tenant
        self.reason = reason
        self.ended_at = ended_at
        self.forget_at = forget_at

    def to_row(self) -> list[Any]:
        return [
            self.session_id,
            self.user_id,
            self.tenant,
            self.reason,
            self.ended_at,
            self.forget_at,
        ]


class User:
    """A user's current roles, live session ids and recent role-change event ids."""

    __slots__ = ("forget_at", "recent_changes", "roles", "sessions", "tenant", "user_id")

    def __init__(
        self,
        user_id: str,
        tenant: str,
        roles: frozenset[str],
        sessions: list[str] | None = None,
        recent_changes: tuple[str, ...] = (),
        forget_at: float = 0.0,
    ) -> None:
        self.user_id = user_id
        self.tenant = tenant
        self.roles = roles
        # A list, not a set: users hold one or two sessions, and an empty set costs 216 bytes.
        self.sessions: list[str] = sessions if sessions is not None else []
        self.recent_changes = recent_changes
        self.forget_at = forget_at

    def copy(self) -> User:
        return User(
            self.user_id,
            self.tenant,
            self.roles,
            list(self.sessions),
            self.recent_changes,
            self.forget_at,
        )

    def to_row(self) -> list[Any]:
        # Live session ids are not stored: restore derives them from the session records.
        return [
            self.user_id,
            self.tenant,
            sorted(self.roles),
            list(self.recent_changes),
            self.forget_at,
        ]


def encode_session_value(value: Session | Ended) -> bytes:
    row = value.to_row()
    return orjson.dumps(["S", *row] if isinstance(value, Session) else ["E", *row])


def encode_user_value(user: User) -> bytes:
    return orjson.dumps(user.to_row())


def decode_session_value(data: bytes) -> Session | Ended:
    row = orjson.loads(data)
    if row[0] == "S":
        r = row[1:]
        return Session(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], tuple(r[10]), tuple(r[11])
        )
    if row[0] == "E":
        return Ended(*row[1:])
    raise ValueError(f"unknown session record kind {row[0]!r}")


def decode_user_value(data: bytes) -> User:
    r = orjson.loads(data)
    return User(r[0], r[1], frozenset(r[2]), None, tuple(r[3]), r[4])
