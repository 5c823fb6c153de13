"""The deadlines of a partition's live sessions, as a wheel of one-second buckets of keys.

A heap of ``(deadline, key)`` entries costs a tuple and a float per live session (~90
bytes); a bucket holds only the key (8 bytes). Buckets are opened in time order once the time
asked about reaches them: their sessions' current deadlines then go on a small exact heap,
which decides the order (earliest first, ties by key). Activity never touches the index; a
session whose deadline moved is put back into a later bucket when its bucket is opened or
its heap entry comes due (lazy re-arm). Every live session has at least one entry at or
before its real deadline; entries of ended sessions are dropped when they come up.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from sessionwarden.enforcer.engine.sessions import Ended, Key, Session

BUCKET_S = 1.0


class Deadlines:
    """Entries at or before the real deadlines of live sessions, earliest first."""

    def __init__(self) -> None:
        self._buckets: dict[int, list[Key]] = {}
        self._starts: list[int] = []  # heap of the numbers of the buckets not opened yet
        self._opened: float = float("-inf")  # buckets up to this number are opened
        self._near: list[tuple[float, Key]] = []  # exact heap of the opened entries

    def arm(self, deadline: float, key: Key) -> None:
        """Add an entry for a live session's (new) deadline; an older one goes stale."""
        bucket = int(deadline // BUCKET_S)
        if bucket <= self._opened:
            heapq.heappush(self._near, (deadline, key))
            return
        keys = self._buckets.get(bucket)
        if keys is None:
            self._buckets[bucket] = [key]
            heapq.heappush(self._starts, bucket)
        else:
            keys.append(key)

    def due_by(self, until: float, sessions: Mapping[Key, Session | Ended]) -> float | None:
        """The earliest real deadline at or before ``until``, or None (re-arms stale entries)."""
        sess = self._first(until, sessions)
        return None if sess is None else sess.deadline()[0]

    def pop_due(self, until: float, sessions: Mapping[Key, Session | Ended]) -> Session | None:
        """Take off the live session with the earliest real deadline at or before ``until``."""
        sess = self._first(until, sessions)
        if sess is not None:
            heapq.heappop(self._near)
        return sess

    def _first(self, until: float, sessions: Mapping[Key, Session | Ended]) -> Session | None:
        """The live session of the top entry once that entry is real and at or before
        ``until``, or None; drops and re-arms stale entries on the way."""
        self._open(until, sessions)
        near = self._near
        while near and near[0][0] <= until:
            key = near[0][1]
            sess = sessions.get(key)
            if sess.__class__ is not Session:
                heapq.heappop(near)
                continue
            assert isinstance(sess, Session)
            deadline = sess.deadline()[0]
            if deadline <= until:
                if deadline != near[0][0]:  # moved, still due: its real place on the heap
                    heapq.heapreplace(near, (deadline, key))
                    continue
                return sess
            heapq.heappop(near)
            self.arm(deadline, key)
        return None

    def _open(self, until: float, sessions: Mapping[Key, Session | Ended]) -> None:
        """Open every bucket that starts at or before ``until``: its live sessions go on the
        exact heap at their current deadlines, or back into a later bucket."""
        starts = self._starts
        while starts and starts[0] * BUCKET_S <= until:
            bucket = heapq.heappop(starts)
            self._opened = bucket
            for key in self._buckets.pop(bucket):
                sess = sessions.get(key)
                if sess.__class__ is Session:
                    assert isinstance(sess, Session)
                    self.arm(sess.deadline()[0], key)
