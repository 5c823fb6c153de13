"""In-memory state of one input partition, and its changelog encoding.

Plain slotted objects, not pydantic models: a live session costs a few hundred bytes and
activity only rewrites ``last_activity``. Times are float seconds since the epoch (event time).

Identity is tenant-scoped: sessions are keyed by ``(tenant, session_id)`` and users by
``(tenant, user_id)``. Changelog keys are compact JSON arrays naming the kind and that identity,
``["s",tenant,session_id]`` for a session (live or ended) and ``["u",tenant,user_id]`` for a
user's roles and recent role-change ids; any string is allowed in either part. Values are
compact JSON arrays; ``None`` means a tombstone. Keys of the older ``s|<id>`` / ``u|<id>`` form
are still read (their values carry the tenant) and rewritten under the new form.
"""

from __future__ import annotations

from typing import Any

import orjson

Key = tuple[str, str]
"""(tenant, session_id) or (tenant, user_id)."""

SESSION = "s"
USER = "u"
RECENT_CHANGES = 16  # role-change and user-revocation event ids kept per user, for de-duplication
RECENT_OUTPUTS = 8  # ids of events a session already produced an audit record for
MAX_ROLE_TIMES = 256  # per user; the oldest role-change times go first beyond it


def _plain(text: str) -> bool:
    """Whether ``text`` needs no JSON escaping (no quote, backslash or control character)."""
    return '"' not in text and "\\" not in text and text.isprintable()


def changelog_key(kind: str, key: Key) -> str:
    tenant, ident = key
    if _plain(tenant) and _plain(ident):  # the common case, without an encoder call
        return f'["{kind}","{tenant}","{ident}"]'
    return orjson.dumps([kind, tenant, ident]).decode()


def revocation_key(tenant: str, session_id: str) -> str:
    """Key of a session's records on the revocations topic: ``["tenant","session_id"]``."""
    return orjson.dumps([tenant, session_id]).decode()


def parse_changelog_key(raw: str) -> tuple[str, Key] | None:
    """(kind, key) of a changelog key, or None for a key of the older ``s|<id>`` form."""
    if not raw.startswith("["):
        return None
    kind, tenant, ident = orjson.loads(raw)
    if kind not in (SESSION, USER) or not isinstance(tenant, str) or not isinstance(ident, str):
        raise ValueError(f"malformed changelog key {raw[:80]!r}")
    return kind, (tenant, ident)


def remember(recent: tuple[str, ...], event_id: str) -> tuple[str, ...]:
    return (*recent, event_id)[-RECENT_OUTPUTS:]


class _SessionRecord:
    """What live sessions and ended markers share: the (tenant, session_id) key."""

    __slots__ = ("key",)
    key: Key

    @property
    def tenant(self) -> str:
        return self.key[0]

    @property
    def session_id(self) -> str:
        return self.key[1]


class Session(_SessionRecord):
    """A live session. ``auth_time`` None: authentication time not trusted (no step-up passes).
    ``recent``: ids of events this session already produced an audit record for."""

    __slots__ = (
        "absolute_deadline",
        "auth_time",
        "idle_timeout",
        "last_activity",
        "login_at",
        "permissions",
        "recent",
        "risk_profile",
        "roles",
        "user_id",
        "user_type",
    )

    def __init__(
        self,
        key: Key,
        user_id: str,
        user_type: str,
        risk_profile: str,
        login_at: float,
        last_activity: float,
        auth_time: float | None,
        idle_timeout: float,
        absolute_deadline: float,
        roles: tuple[str, ...],
        permissions: tuple[str, ...],
        recent: tuple[str, ...] = (),
    ) -> None:
        self.key = key
        self.user_id = user_id
        self.user_type = user_type
        self.risk_profile = risk_profile
        self.login_at = login_at
        self.last_activity = last_activity
        self.auth_time = auth_time
        self.idle_timeout = idle_timeout
        self.absolute_deadline = absolute_deadline
        self.roles = roles
        self.permissions = permissions
        self.recent = recent

    def deadline(self) -> tuple[float, str]:
        """The earlier of both deadlines and its reason (absolute wins a tie)."""
        idle = self.last_activity + self.idle_timeout
        if self.absolute_deadline <= idle:
            return self.absolute_deadline, "absolute_timeout"
        return idle, "idle_timeout"

    def to_row(self) -> list[Any]:
        return [
            self.key[1],
            self.user_id,
            self.key[0],
            self.user_type,
            self.risk_profile,
            self.login_at,
            self.last_activity,
            self.auth_time,
            self.idle_timeout,
            self.absolute_deadline,
            self.roles,
            self.permissions,
            self.recent,
        ]

    @classmethod
    def from_row(cls, r: list[Any]) -> Session:
        return cls(
            (r[2], r[0]),
            r[1],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            r[8],
            r[9],
            tuple(r[10]),
            tuple(r[11]),
            tuple(r[12]) if len(r) > 12 else (),
        )


class Ended(_SessionRecord):
    """What remains of a session after it ended: enough to refuse resurrection and to tell
    activity on an ended session from activity on an unknown one. Kept until ``forget_at``.
    ``lived`` is False for the marker a logout leaves when its session was never seen."""

    __slots__ = ("ended_at", "forget_at", "lived", "reason", "recent", "user_id")

    def __init__(
        self,
        key: Key,
        user_id: str,
        reason: str,
        ended_at: float,
        forget_at: float,
        recent: tuple[str, ...] = (),
        lived: bool = True,
    ) -> None:
        self.key = key
        self.user_id = user_id
        self.reason = reason
        self.ended_at = ended_at
        self.forget_at = forget_at
        self.recent = recent
        self.lived = lived

    def copy(self) -> Ended:
        return Ended(
            self.key,
            self.user_id,
            self.reason,
            self.ended_at,
            self.forget_at,
            self.recent,
            self.lived,
        )

    def to_row(self) -> list[Any]:
        return [
            self.key[1],
            self.user_id,
            self.key[0],
            self.reason,
            self.ended_at,
            self.forget_at,
            self.recent,
            self.lived,
        ]

    @classmethod
    def from_row(cls, r: list[Any]) -> Ended:
        recent = tuple(r[6]) if len(r) > 6 else ()
        return cls((r[2], r[0]), r[1], r[3], r[4], r[5], recent, r[7] if len(r) > 7 else True)


RoleTimes = dict[str, tuple[float, bool]]
"""role -> (event time of its last change, granted?)."""
Revoked = tuple[float, str, str | None, str]
"""The user's latest ``user_revoked``: (event time, signal, source, event id)."""


class User:
    """A user's current roles, live session ids (of the user's tenant), recent role-change and
    user-revocation event ids, per role the event time of its last change, and the latest
    ``user_revoked`` signal (a login older than it, read later, is ended at once)."""

    __slots__ = (
        "forget_at",
        "key",
        "recent_changes",
        "revoked",
        "role_times",
        "roles",
        "sessions",
    )

    def __init__(
        self,
        key: Key,
        roles: frozenset[str],
        sessions: list[str] | None = None,
        recent_changes: tuple[str, ...] = (),
        forget_at: float = 0.0,
        role_times: RoleTimes | None = None,
        revoked: Revoked | None = None,
    ) -> None:
        self.key = key
        self.roles = roles
        # A list, not a set: users hold one or two sessions, and an empty set costs 216 bytes.
        self.sessions: list[str] = sessions if sessions is not None else []
        self.recent_changes = recent_changes
        self.forget_at = forget_at
        self.role_times = role_times
        self.revoked = revoked

    @property
    def tenant(self) -> str:
        return self.key[0]

    @property
    def user_id(self) -> str:
        return self.key[1]

    def copy(self) -> User:
        return User(
            self.key,
            self.roles,
            list(self.sessions),
            self.recent_changes,
            self.forget_at,
            dict(self.role_times) if self.role_times is not None else None,
            self.revoked,
        )

    def to_row(self) -> list[Any]:
        # Live session ids are not stored: restore derives them from the session records.
        times = self.role_times or {}
        row = [
            self.key[1],
            self.key[0],
            sorted(self.roles),
            list(self.recent_changes),
            self.forget_at,
            [[role, at, granted] for role, (at, granted) in sorted(times.items())],
        ]
        if self.revoked is not None:  # only then: the other records keep their bytes
            row.append(list(self.revoked))
        return row


def encode_session_value(value: Session | Ended) -> bytes:
    row = value.to_row()
    return orjson.dumps(["S", *row] if isinstance(value, Session) else ["E", *row])


def encode_user_value(user: User) -> bytes:
    return orjson.dumps(user.to_row())


def decode_session_value(data: bytes) -> Session | Ended:
    row = orjson.loads(data)
    if row[0] == "S":
        return Session.from_row(row[1:])
    if row[0] == "E":
        return Ended.from_row(row[1:])
    raise ValueError(f"unknown session record kind {row[0]!r}")


def decode_user_value(data: bytes) -> User:
    r = orjson.loads(data)
    times = {role: (at, granted) for role, at, granted in r[5]} if len(r) > 5 else {}
    revoked: Revoked | None = None
    if len(r) > 6:
        at, signal, source, event_id = r[6]
        revoked = (at, signal, source, event_id)
    return User((r[1], r[0]), frozenset(r[2]), None, tuple(r[3]), r[4], times or None, revoked)
