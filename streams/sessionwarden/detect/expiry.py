"""When a user's document can no longer change any judgment, and an index of documents by it.

Pure code: times are event times in seconds, passed in. Each audit partition keeps a clock,
the latest event time (``occurred_at``) read on it; records may arrive up to ``lateness``
behind it (the longest detector window, the same allowance a document's own buckets keep for
late records). A part of a document is dead once no record at or after ``clock - lateness``
could read it:

- a bucket of marks of window ``W`` (a read at t takes t's bucket and the one ``W`` before):
  once ``clock - lateness >= bucket start + 2W``;
- a live session: once ``clock - lateness >= its absolute deadline`` (it counts only before);
- a cooldown: once ``clock - lateness >= last alert + period`` (no later trigger is withheld
  by it; a count of withheld alerts it still carries is dropped with it).

A document expires at the latest of its parts' times. The store treats an expired document
as empty when it judges a record, and removes it (documents.py): whether the removal has
happened yet never changes a judgment, so a sweep can run at any batch.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from sessionwarden.detect.tables import COOLDOWNS, EXPIRATIONS, GRANTS, SESSIONS, Tables, UserKey

NEVER = -math.inf
"""The expiry of an empty document: expired at any clock."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each part of a document can still change a judgment."""

    windows: Mapping[str, float]
    """Mark table -> its read look-back (and bucket size), seconds."""
    cooldown: float
    lateness: float = field(init=False)
    """How far behind its partition's clock a record may be and still be judged as if
    nothing had been removed: the longest window."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lateness", max(self.windows.values()))

    def expires(self, tables: Tables) -> float:
        """The clock time at which the document of ``tables`` (one user's) expires."""
        late = self.lateness
        out = NEVER
        for name in (EXPIRATIONS, GRANTS):
            window = self.windows[name]
            for _, (start, _end) in tables[name]:
                out = max(out, start + 2 * window + late)
        for raw in tables[SESSIONS].values():
            for _started, deadline in orjson.loads(raw).values():
                out = max(out, deadline + late)
        for raw in tables[COOLDOWNS].values():
            out = max(out, orjson.loads(raw)["last_at"] + self.cooldown + late)
        return out


def expired(expires: float, clock: float) -> bool:
    return clock >= expires


@dataclass(slots=True)
class ExpiryIndex:
    """Users' documents by the clock time they expire, per audit partition: a sweep pops the
    due ones instead of reading every document. Entries a later :meth:`put` or
    :meth:`discard` made stale stay in the heap until popped (or a compaction)."""

    _at: dict[int, dict[UserKey, float]] = field(default_factory=dict)
    _heaps: dict[int, list[tuple[float, UserKey]]] = field(default_factory=dict)

    def put(self, partition: int, user: UserKey, expires: float) -> None:
        at = self._at.setdefault(partition, {})
        if at.get(user) == expires:
            return
        at[user] = expires
        heap = self._heaps.setdefault(partition, [])
        heapq.heappush(heap, (expires, user))
        if len(heap) > 2 * len(at) + 64:  # mostly stale: rebuild from the live entries
            self._heaps[partition] = [(t, u) for u, t in at.items()]
            heapq.heapify(self._heaps[partition])

    def discard(self, partition: int, user: UserKey) -> None:
        self._at.get(partition, {}).pop(user, None)

    def count(self, partitions: Iterable[int]) -> int:
        """Documents indexed of ``partitions``."""
        return sum(len(self._at.get(p, ())) for p in partitions)

    def entries(self, partition: int) -> int:
        """Heap entries of ``partition``, stale ones included."""
        return len(self._heaps.get(partition, ()))

    def due(self, partition: int, clock: float, limit: int) -> list[UserKey]:
        """Remove and return up to ``limit`` users of ``partition`` expired at ``clock``,
        earliest first."""
        out: list[UserKey] = []
        while len(out) < limit:
            top = self._top(partition)
            if top is None or not expired(top[0], clock):
                break
            out.append(self._pop(partition))
        return out

    def earliest(self, limits: Mapping[int, int], n: int) -> list[tuple[int, UserKey]]:
        """Remove and return the ``n`` users expiring first over the partitions of
        ``limits``, taking at most ``limits[p]`` of partition ``p``."""
        left = dict(limits)
        out: list[tuple[int, UserKey]] = []
        while len(out) < n:
            tops = [(top, p) for p in left if left[p] > 0 and (top := self._top(p)) is not None]
            if not tops:
                break
            _, partition = min(tops)
            out.append((partition, self._pop(partition)))
            left[partition] -= 1
        return out

    def _top(self, partition: int) -> tuple[float, UserKey] | None:
        heap = self._heaps.get(partition)
        at = self._at.get(partition, {})
        while heap:
            expires, user = heap[0]
            if at.get(user) == expires:
                return heap[0]
            heapq.heappop(heap)  # stale: rewritten or removed since
        return None

    def _pop(self, partition: int) -> UserKey:
        _, user = heapq.heappop(self._heaps[partition])
        del self._at[partition][user]
        return user
