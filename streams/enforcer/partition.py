"""The transactional state of one input partition: sessions, users, deadline heaps, the undo
log of the open batch and the changelog it produces. No decisions here (see core.py).

A *batch* is what the Kafka shell commits as one transaction. ``changelog()`` returns the
records of everything the batch touched (coalesced per key), ``commit()`` closes the batch once
the transaction carrying them committed, and ``abort()`` puts the in-memory state back exactly
as it was when the batch began.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any, NamedTuple
from uuid import UUID

from streams.enforcer.state import (
    SESSION_PREFIX,
    USER_PREFIX,
    Ended,
    Session,
    User,
    decode_session_value,
    decode_user_value,
    encode_session_value,
    encode_user_value,
)
from streams.policy import Policy

DEDUPE_CAPACITY = 50_000  # recent event ids remembered per partition (best effort, in memory)
INTERN_CAPACITY = 10_000


def _had_record(old: object) -> bool:
    return isinstance(old, User) and bool(old.recent_changes)


class Emit(NamedTuple):
    """An output record: ``topic`` is ``"revocations"`` or ``"audit"``."""

    topic: str
    key: str
    value: dict[str, Any]


class PartitionState:
    """Sessions, users and deadlines of one input partition, changed in undoable batches."""

    def __init__(self, policy: Policy, partition: int = 0) -> None:
        self.policy = policy
        self.partition = partition
        self.sessions: dict[str, Session | Ended] = {}
        self.users: dict[str, User] = {}
        self.out: list[Emit] = []
        self.event_watermark = 0.0  # highest event time read on this partition
        self.now = 0.0
        self.stats: dict[str, int] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._forget: list[tuple[float, str]] = []  # (forget_at, changelog key)
        self._seen: set[UUID] = set()
        self._seen_order: deque[UUID] = deque()
        self._undo: dict[str, list[Any] | Ended | User | None] = {}
        self._batch_ids: list[UUID] = []
        self._batch_watermark = 0.0
        self._in_batch = False
        self._intern: dict[Any, Any] = {}

    def begin(self) -> None:
        if self._in_batch:
            raise RuntimeError("a batch is already open")
        self._in_batch = True
        self._batch_watermark = self.event_watermark

    def changelog(self) -> list[tuple[str, bytes | None]]:
        """The changelog records (key, value or None) of every key the open batch touched,
        one per key however often it changed. The batch stays open until commit()/abort()."""
        changes: list[tuple[str, bytes | None]] = []
        for key in self._undo:
            if key.startswith(SESSION_PREFIX):
                sess = self.sessions.get(key[2:])
                changes.append((key, None if sess is None else encode_session_value(sess)))
            else:
                # A user is derivable from its live sessions until a role change; only then
                # (recent_changes non-empty) does it need a record of its own.
                user = self.users.get(key[2:])
                if user is not None and user.recent_changes:
                    changes.append((key, encode_user_value(user)))
                elif user is None and _had_record(self._undo[key]):
                    changes.append((key, None))
        return changes

    def commit(self) -> None:
        """Close the batch once its transaction committed: its changes become the baseline."""
        self._undo.clear()
        self._batch_ids.clear()
        self._in_batch = False

    def abort(self) -> None:
        """Undo every in-memory change of the open batch and drop its outputs."""
        for key, old in self._undo.items():
            ident = key[2:]
            if key.startswith(SESSION_PREFIX):
                if old is None:
                    self.sessions.pop(ident, None)
                elif isinstance(old, list):
                    sess = Session(*old)
                    self.sessions[ident] = sess
                    # its heap entry may have been consumed during the batch
                    heapq.heappush(self._deadlines, (sess.deadline()[0], ident))
                else:
                    assert isinstance(old, Ended)
                    self.sessions[ident] = old
            elif old is None:
                self.users.pop(ident, None)
            else:
                assert isinstance(old, User)
                self.users[ident] = old
        for eid in self._batch_ids:
            self._seen.discard(eid)
        self._undo.clear()
        self._batch_ids.clear()
        self.out.clear()
        self.event_watermark = self._batch_watermark
        self._in_batch = False

    def take_outputs(self) -> list[Emit]:
        out, self.out = self.out, []
        return out

    def due_by(self, until: float) -> float | None:
        """The earliest real deadline at or before ``until``, or None. Re-arms stale heap
        entries on the way (activity moved them later), so it is cheap to ask every batch."""
        heap = self._deadlines
        while heap and heap[0][0] <= until:
            sid = heap[0][1]
            sess = self.sessions.get(sid)
            if sess.__class__ is not Session:
                heapq.heappop(heap)
                continue
            assert isinstance(sess, Session)
            deadline = sess.deadline()[0]
            if deadline <= until:
                return deadline
            heapq.heapreplace(heap, (deadline, sid))
        return None

    def forget_expired(self, now: float) -> int:
        """Drop ended-session markers and idle user records past their retention (tombstones)."""
        dropped = 0
        heap = self._forget
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            ident = key[2:]
            if key.startswith(SESSION_PREFIX):
                ended = self.sessions.get(ident)
                if isinstance(ended, Ended) and ended.forget_at <= now:
                    self._touch(key, ended)
                    del self.sessions[ident]
                    dropped += 1
            else:
                user = self.users.get(ident)
                if user is not None and not user.sessions and user.forget_at <= now:
                    self._touch(key, user)
                    del self.users[ident]
                    dropped += 1
        return dropped

    def live_sessions(self) -> int:
        return sum(1 for s in self.sessions.values() if s.__class__ is Session)

    def restore(self, key: str, value: bytes | None) -> None:
        """Apply one changelog record (outside any batch), in changelog order."""
        ident = key[2:]
        if key.startswith(SESSION_PREFIX):
            if value is None:
                self.sessions.pop(ident, None)
            else:
                self.sessions[ident] = decode_session_value(value)
        elif key.startswith(USER_PREFIX):
            if value is None:
                self.users.pop(ident, None)
            else:
                self.users[ident] = decode_user_value(value)

    def finish_restore(self) -> None:
        """Rebuild the derived indexes (user -> live sessions, deadline and forget heaps)."""
        self._deadlines = []
        self._forget = []
        for sid, sess in self.sessions.items():
            if isinstance(sess, Session):
                user = self.users.get(sess.user_id)
                if user is None:
                    user = User(sess.user_id, sess.tenant, frozenset())
                    self.users[sess.user_id] = user
                user.roles = self._interned(user.roles | frozenset(sess.roles))
                user.forget_at = max(
                    user.forget_at, sess.absolute_deadline + self.policy.max_absolute
                )
                user.sessions.append(sid)
                self._deadlines.append((sess.deadline()[0], sid))
            else:
                self._forget.append((sess.forget_at, SESSION_PREFIX + sid))
        for uid, user in self.users.items():
            self._forget.append((user.forget_at, USER_PREFIX + uid))
        heapq.heapify(self._deadlines)
        heapq.heapify(self._forget)

    def _touch(self, key: str, current: Session | Ended | User | None) -> None:
        """Record the value a key had when the batch began (first touch only). A live session
        is kept as its row (cheaper than a copy: activity touches one per event)."""
        if key not in self._undo:
            if isinstance(current, Session):
                self._undo[key] = current.to_row()
            elif isinstance(current, User):
                self._undo[key] = current.copy()
            else:
                self._undo[key] = current

    def _remember(self, eid: UUID) -> None:
        if len(self._seen_order) >= DEDUPE_CAPACITY:
            self._seen.discard(self._seen_order.popleft())
        self._seen.add(eid)
        self._seen_order.append(eid)
        self._batch_ids.append(eid)

    def _emit(self, topic: str, key: str, value: dict[str, Any]) -> None:
        self.out.append(Emit(topic, key, value))

    def _interned(self, value: Any) -> Any:
        found = self._intern.get(value)
        if found is not None:
            return found
        if len(self._intern) < INTERN_CAPACITY:
            self._intern[value] = value
        return value

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1
