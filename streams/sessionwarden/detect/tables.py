"""The detectors' state in key/value tables of bytes, and the writes that change it.

The engine reads one user's keys of these tables: the app keeps them together, one document
per user in one faust table (documents.py), so a record's changes reach the changelog at once;
unit tests use dicts. Reads happen while an event is judged; writes are returned as data and
applied only after the event's alerts were delivered, so state never records an event whose
alert could be lost.

Tables (values are JSON through the codec's orjson options):

A user is ``(tenant, user_id)``: tenants never share state.

- ``expirations`` / ``grants``: ``((tenant, user_id), (start, end))`` -> list of marks, one
  tumbling event-time bucket of ``size`` seconds per key. Reading at time t takes t's bucket
  and the one before, so every mark of the last ``size`` seconds is seen: a sliding window
  over tumbling buckets; a user's document drops buckets two windows older than its latest
  record.
- ``sessions``: ``(tenant, user_id)`` -> ``{session_id: [started_at, absolute_deadline]}``;
  deleted when the user has no live session left.
- ``cooldowns``: ``(tenant, user_id, kind)`` -> the last emitted alert of that kind for the
  user.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Generic, TypeVar

import orjson

from sessionwarden.contracts.codec import encode_dict
from sessionwarden.detect.alerts import CooldownRecord
from sessionwarden.detect.detectors import Expiry, Grant, LiveSessions

EXPIRATIONS: Final = "expirations"
GRANTS: Final = "grants"
SESSIONS: Final = "sessions"
COOLDOWNS: Final = "cooldowns"
TABLES: Final = (EXPIRATIONS, GRANTS, SESSIONS, COOLDOWNS)
MAX_MARKS_PER_BUCKET = 512
"""A user's bucket keeps its latest marks only; a flood cannot grow one value without bound."""

Tables = Mapping[str, MutableMapping[Any, bytes]]
WindowRange = tuple[float, float]
UserKey = tuple[str, str]
"""(tenant, user_id)."""
M = TypeVar("M", Expiry, Grant)


def bucket_range(size: float) -> Callable[[float], WindowRange]:
    """The tumbling bucket holding time t, as faust's TumblingWindow names it: (start, end)."""

    def current(t: float) -> WindowRange:
        start = (t // size) * size
        return (start, start + size - 0.1)

    return current


@dataclass(frozen=True, slots=True)
class Write:
    table: str
    key: Any
    value: bytes | None
    """None deletes the key (a tombstone in the changelog)."""


def apply_writes(tables: Tables, writes: list[Write]) -> None:
    for w in writes:
        table = tables[w.table]
        if w.value is None:
            table.pop(w.key, None)
        else:
            table[w.key] = w.value


class MarkLog(Generic[M]):
    """Per-user marks of one kind in tumbling buckets of ``size`` seconds."""

    def __init__(self, name: str, size: float, factory: Callable[..., M]) -> None:
        self.name = name
        self.size = size
        self._factory: Callable[..., M] = factory
        self._bucket = bucket_range(size)

    def recent(self, tables: Tables, user: UserKey, at: float) -> list[M]:
        """Every mark of the user from at least the last ``size`` seconds before ``at``."""
        table = tables[self.name]
        marks: list[M] = []
        for rng in (self._bucket(at - self.size), self._bucket(at)):
            raw = table.get((user, rng))
            if raw:
                marks.extend(self._decode(raw))
        return marks

    def append(self, tables: Tables, user: UserKey, mark: M) -> Write:
        key = (user, self._bucket(mark.at))
        raw = tables[self.name].get(key)
        marks = self._decode(raw) if raw else []
        marks.append(mark)
        # orjson writes (slotted) dataclasses as objects, field by field
        return Write(self.name, key, encode_dict({"marks": marks[-MAX_MARKS_PER_BUCKET:]}))

    def _decode(self, raw: bytes) -> list[M]:
        return [self._factory(**doc) for doc in orjson.loads(raw)["marks"]]


def _grant(**doc: Any) -> Grant:
    doc["roles"] = tuple(doc.get("roles", ()))
    doc["sensitive"] = tuple(doc.get("sensitive", ()))
    return Grant(**doc)


class DetectState:
    """Typed access to the four tables."""

    def __init__(self, tables: Tables, expiry_window: float, grant_window: float) -> None:
        self.tables = tables
        self.expirations: MarkLog[Expiry] = MarkLog(EXPIRATIONS, expiry_window, Expiry)
        self.grants: MarkLog[Grant] = MarkLog(GRANTS, grant_window, _grant)

    def over(self, tables: Tables) -> DetectState:
        """The same access over other tables (one user's document), without rebuilding it."""
        state = object.__new__(DetectState)
        state.tables, state.expirations, state.grants = tables, self.expirations, self.grants
        return state

    def sessions(self, user: UserKey) -> LiveSessions:
        raw = self.tables[SESSIONS].get(user)
        if not raw:
            return {}
        return {sid: (span[0], span[1]) for sid, span in orjson.loads(raw).items()}

    def put_sessions(self, user: UserKey, live: LiveSessions) -> Write:
        if not live:
            return Write(SESSIONS, user, None)
        return Write(SESSIONS, user, encode_dict({sid: list(s) for sid, s in live.items()}))

    def cooldown(self, user: UserKey, kind: str) -> CooldownRecord | None:
        raw = self.tables[COOLDOWNS].get((*user, kind))
        if not raw:
            return None
        doc = orjson.loads(raw)
        recent = tuple(doc["recent"])
        return CooldownRecord(doc["last_at"], doc["severity"], doc["suppressed"], recent)

    def put_cooldown(self, user: UserKey, kind: str, record: CooldownRecord) -> Write:
        return Write(COOLDOWNS, (*user, kind), encode_dict(asdict(record)))
