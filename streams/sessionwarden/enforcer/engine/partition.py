"""The transactional state of one input partition: sessions, users, the deadline index, the
forget heap, the undo log of the open batch and the changelog it produces. No decisions here:
the enforcer of core.py holds one ``PartitionState`` and changes it only through the methods
below.

A *batch* is what the Kafka shell commits as one transaction. ``changelog()`` returns the
records of everything the batch touched (coalesced per key), ``commit()`` closes the batch once
the transaction carrying them committed, and ``abort()`` puts the in-memory state back exactly
as it was when the batch began, forget-heap entries included.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from sessionwarden.enforcer.engine.deadlines import Deadlines
from sessionwarden.enforcer.engine.sessions import (
    SESSION,
    USER,
    Ended,
    Key,
    Session,
    User,
    changelog_key,
    decode_session_value,
    decode_user_value,
    encode_session_value,
    encode_user_value,
    parse_changelog_key,
)
from sessionwarden.policy import Policy

DEDUPE_CAPACITY = 50_000  # recent event ids remembered per partition (in memory, a fast path)
INTERN_CAPACITY = 10_000

SessionUndo = tuple[Session, float, float, tuple[str, ...], tuple[str, ...]]
"""A live session and its mutable fields (last_activity, idle_timeout, roles, recent)."""
TAGGED_TENANTS = 10_000  # tenants whose remembered event ids are one int each
SeenId = int | tuple[str, int]
"""An event id as an int (half the memory of the UUID, hashed in C) tagged with its tenant,
as tenants may reuse each other's ids: the tenant's number above the UUID's 128 bits (no
tuple: 64 bytes less per remembered id), or (tenant, id) past ``TAGGED_TENANTS`` tenants."""


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
        self.sessions: dict[Key, Session | Ended] = {}
        # A user whose only live session is its first one since it was last unknown, with no
        # role change, is that Session itself (its User derives from it, see ``user``): most
        # users are, and a User of their own would cost some 200 bytes each.
        self.users: dict[Key, User | Session] = {}
        self.out: list[Emit] = []
        self.event_watermark = 0.0  # highest effective event time read on this partition
        self.received_watermark = 0.0  # highest receive time read on this partition
        self._deadlines = Deadlines()
        self._forget: list[tuple[float, str, Key]] = []  # (forget_at, kind, key)
        self._seen: set[SeenId] = set()
        self._tenant_tags: dict[str, int] = {}
        self._seen_order: deque[SeenId] = deque()
        self._undo_sessions: dict[Key, SessionUndo | Ended | None] = {}
        self._undo_users: dict[Key, User | Session | None] = {}
        self._batch_ids: list[SeenId] = []
        self._batch_watermarks = (0.0, 0.0)
        self._in_batch = False
        self._intern: dict[Any, Any] = {}
        # records restored under the older key form: rewritten under the new one, then the
        # old key is tombstoned, in the first batch that commits
        self._legacy: dict[str, tuple[str, Key]] = {}
        self._restoring: dict[str, bytes | None] = {}  # raw changelog records, last per key
        self._decode_queue: deque[tuple[str, bytes | None]] = deque()

    def begin(self) -> None:
        if self._in_batch:
            raise RuntimeError("a batch is already open")
        self._in_batch = True
        self._batch_watermarks = (self.event_watermark, self.received_watermark)
        for kind, key in self._legacy.values():
            if kind == SESSION:
                self.touch_session(key, self.sessions.get(key))
            else:
                self.touch_user(key, self.users.get(key))

    def changelog(self) -> list[tuple[str, bytes | None]]:
        """The changelog records (key, value or None) of every key the open batch touched,
        one per key however often it changed. The batch stays open until commit()/abort()."""
        changes: list[tuple[str, bytes | None]] = [(old, None) for old in self._legacy]
        sessions = self.sessions
        for key in self._undo_sessions:
            sess = sessions.get(key)
            changes.append(
                (changelog_key(SESSION, key), None if sess is None else encode_session_value(sess))
            )
        for key, old in self._undo_users.items():
            # A user is derivable from its live sessions until a role change; only then
            # (recent_changes non-empty) does it need a record of its own.
            user = self.users.get(key)
            if isinstance(user, User) and user.recent_changes:
                changes.append((changelog_key(USER, key), encode_user_value(user)))
            elif user is None and isinstance(old, User) and old.recent_changes:
                changes.append((changelog_key(USER, key), None))
        return changes

    def commit(self) -> None:
        """Close the batch once its transaction committed: its changes become the baseline."""
        self._undo_sessions.clear()
        self._undo_users.clear()
        self._batch_ids.clear()
        self._legacy.clear()
        self._in_batch = False

    def abort(self) -> None:
        """Undo every in-memory change of the open batch and drop its outputs."""
        for key, old in self._undo_sessions.items():
            if old is None:
                self.sessions.pop(key, None)
            elif isinstance(old, tuple):
                sess = old[0]
                _, sess.last_activity, sess.idle_timeout, sess.roles, sess.recent = old
                self.sessions[key] = sess
                # its deadline entry may have been consumed during the batch
                self._deadlines.arm(sess.deadline()[0], key)
            else:
                self.sessions[key] = old
                heapq.heappush(self._forget, (old.forget_at, SESSION, key))
        for key, user in self._undo_users.items():
            if user is None:
                self.users.pop(key, None)
            else:
                self.users[key] = user
                if isinstance(user, User):
                    heapq.heappush(self._forget, (user.forget_at, USER, key))
        for seen in self._batch_ids:
            self._seen.discard(seen)
        self._undo_sessions.clear()
        self._undo_users.clear()
        self._batch_ids.clear()
        self.out.clear()
        self.event_watermark, self.received_watermark = self._batch_watermarks
        self._in_batch = False

    def pending_records(self) -> int:
        """Records the open batch has made so far: its outputs, and a changelog record per
        key it touched (an upper bound; the changelog coalesces per key). Constant time."""
        return len(self.out) + len(self._undo_sessions) + len(self._undo_users)

    def take_outputs(self) -> list[Emit]:
        out, self.out = self.out, []
        return out

    def due_by(self, until: float) -> float | None:
        """The earliest real deadline at or before ``until``, or None. Re-arms stale entries
        on the way (activity moved them later), so it is cheap to ask every batch."""
        return self._deadlines.due_by(until, self.sessions)

    def pop_due(self, until: float) -> Session | None:
        """Take the live session with the earliest real deadline at or before ``until`` off
        the deadline index, or None."""
        return self._deadlines.pop_due(until, self.sessions)

    def arm(self, deadline: float, key: Key) -> None:
        """Index a live session's (new) deadline; the older entry goes stale."""
        self._deadlines.arm(deadline, key)

    def forget_later(self, forget_at: float, kind: str, key: Key) -> None:
        """Queue an ended-session marker or an idle user for ``forget_expired``."""
        heapq.heappush(self._forget, (forget_at, kind, key))

    def forget_expired(self, now: float) -> int:
        """Drop ended-session markers and idle user records past their retention (tombstones)."""
        dropped = 0
        heap = self._forget
        while heap and heap[0][0] <= now:
            _, kind, key = heapq.heappop(heap)
            if kind == SESSION:
                ended = self.sessions.get(key)
                if isinstance(ended, Ended) and ended.forget_at <= now:
                    self.touch_session(key, ended)
                    del self.sessions[key]
                    dropped += 1
            else:
                user = self.users.get(key)
                if isinstance(user, User) and not user.sessions and user.forget_at <= now:
                    self.touch_user(key, user)
                    del self.users[key]
                    dropped += 1
        return dropped

    def live_sessions(self) -> int:
        return sum(1 for s in self.sessions.values() if s.__class__ is Session)

    def restore(self, raw_key: str, value: bytes | None) -> None:
        """Take one changelog record (outside any batch), in changelog order. Records are
        kept raw, one per key (the last), and decoded in ``finish_restore``: most keys have
        several records in an uncompacted changelog. A key of the older form flushes them
        first, so the order in which records apply is the changelog's."""
        if raw_key.startswith("["):
            restoring = self._restoring
            restoring.pop(raw_key, None)  # re-inserted last: the dict keeps last-write order
            restoring[raw_key] = value
            return
        self.decode_restored()
        self._restore_one(raw_key, value)

    def decode_restored(self, limit: int | None = None) -> bool:
        """Decode up to ``limit`` (None: all) of the records kept by ``restore``, in their
        order; True once none is left. Lets the shell spread the decoding over loop turns."""
        if self._restoring:
            self._decode_queue.extend(self._restoring.items())
            self._restoring = {}
        queue = self._decode_queue
        for _ in range(len(queue) if limit is None else min(limit, len(queue))):
            self._restore_one(*queue.popleft())
        return not queue

    def _restore_one(self, raw_key: str, value: bytes | None) -> None:
        parsed = parse_changelog_key(raw_key)
        if parsed is None:  # the older key form: the value names the tenant
            parsed = self._legacy.get(raw_key)
            if parsed is None and value is not None:
                if raw_key.startswith("s|"):
                    parsed = (SESSION, decode_session_value(value).key)
                elif raw_key.startswith("u|"):
                    parsed = (USER, decode_user_value(value).key)
            if parsed is None:
                return
            self._legacy[raw_key] = parsed
        kind, key = parsed
        if kind == SESSION:
            if value is None:
                self.sessions.pop(key, None)
            else:
                self._put_restored(key, decode_session_value(value))
        elif value is None:
            self.users.pop(key, None)
        else:
            self.users[key] = decode_user_value(value)

    def _put_restored(self, key: Key, sess: Session | Ended) -> None:
        """Keep a decoded session sharing what a live one shares: one key tuple (its dict
        key's), the interned tenant, strings and role tuples, and one float for equal times."""
        intern = self.intern
        old = self.sessions.get(key)
        sess.key = old.key if old is not None else (intern(key[0]), key[1])
        if isinstance(sess, Session):
            sess.user_type = intern(sess.user_type)
            sess.risk_profile = intern(sess.risk_profile)
            sess.roles = intern(sess.roles)
            sess.permissions = intern(sess.permissions)
            if sess.last_activity == sess.login_at:
                sess.last_activity = sess.login_at
            if sess.auth_time == sess.login_at:
                sess.auth_time = sess.login_at
        else:
            sess.reason = intern(sess.reason)
        self.sessions[sess.key] = sess

    def finish_restore(self) -> None:
        """Rebuild the derived indexes (user -> live sessions, deadline and forget heaps)."""
        self.decode_restored()
        self._deadlines = deadlines = Deadlines()
        self._forget = []
        for key, sess in self.sessions.items():
            if isinstance(sess, Session):
                ukey = (key[0], sess.user_id)
                user = self.users.get(ukey)
                if user is None:
                    self.users[ukey] = sess
                    deadlines.arm(sess.deadline()[0], key)
                    continue
                if isinstance(user, Session):
                    self.users[ukey] = user = self._derived_user(ukey, user)
                roles = self.intern(self.policy.known_roles(sess.roles))
                if not roles <= user.roles:
                    user.roles = self.intern(user.roles | roles)
                user.forget_at = max(
                    user.forget_at, sess.absolute_deadline + self.policy.max_absolute
                )
                user.sessions.append(key[1])
                deadlines.arm(sess.deadline()[0], key)
            else:
                self._forget.append((sess.forget_at, SESSION, key))
        for ukey, user in self.users.items():
            if isinstance(user, User):  # records written before roles were kept catalogued
                user.roles = self.intern(self.policy.known_roles(user.roles))
            if isinstance(user, User) and not user.sessions:  # the others: when it ends
                self._forget.append((user.forget_at, USER, ukey))
            elif isinstance(user, User) and len(user.sessions) > 1:
                user.sessions.sort(key=self._login_order(ukey[0]))
        heapq.heapify(self._forget)

    # -- what the decisions change the state through -----------------------------------

    def touch_session(self, key: Key, current: Session | Ended | None) -> None:
        """Record the value a session key had when the batch began (first touch only). A live
        session is kept as itself and the values of its mutable fields (cheaper than a copy:
        activity touches one per event; the other fields never change)."""
        if key not in self._undo_sessions:
            if current.__class__ is Session:
                assert isinstance(current, Session)
                self._undo_sessions[key] = (
                    current,
                    current.last_activity,
                    current.idle_timeout,
                    current.roles,
                    current.recent,
                )
            elif current is None:
                self._undo_sessions[key] = None
            else:
                assert isinstance(current, Ended)
                self._undo_sessions[key] = current.copy()

    def touch_user(self, key: Key, current: User | Session | None) -> None:
        """Record the user a key had when the batch began (first touch only); a user that is
        its session is kept as that session (touch_session keeps the session's fields)."""
        if key not in self._undo_users:
            self._undo_users[key] = current.copy() if isinstance(current, User) else current

    def user(self, ukey: Key) -> User | None:
        """The user of ``ukey``, as a User of its own from now on: one that was its only
        session gets one (derived from it) first, so that it can change."""
        entry = self.users.get(ukey)
        if entry.__class__ is Session:
            assert isinstance(entry, Session)
            self.touch_user(ukey, entry)
            self.users[ukey] = user = self._derived_user(ukey, entry)
            return user
        assert entry is None or isinstance(entry, User)
        return entry

    def add_user_session(self, user: User, sess: Session) -> None:
        """Add a live session to its user's, which are kept oldest first (by login time, then
        session id), so the oldest is found at once. Logins come mostly in time order: an
        append; one read late is inserted in its place."""
        sids = user.sessions
        order = self._login_order(user.key[0])
        mine = (sess.login_at, sess.key[1])
        if not sids or order(sids[-1]) <= mine:
            sids.append(sess.key[1])
        else:
            sids.insert(bisect.bisect_right(sids, mine, key=order), sess.key[1])

    def _login_order(self, tenant: str) -> Callable[[str], tuple[float, str]]:
        sessions = self.sessions

        def order(sid: str) -> tuple[float, str]:
            sess = sessions[(tenant, sid)]
            assert isinstance(sess, Session)
            return sess.login_at, sid

        return order

    def live_sessions_of(self, ukey: Key) -> list[Session]:
        """The live sessions of one user, oldest first (a new list: ending them is safe)."""
        entry = self.users.get(ukey)
        if entry is None:
            return []
        if isinstance(entry, Session):
            return [entry]
        found: list[Session] = []
        for sid in entry.sessions:
            sess = self.sessions[(ukey[0], sid)]
            assert isinstance(sess, Session)
            found.append(sess)
        return found

    def user_items(self) -> Iterator[tuple[Key, User]]:
        """Every user as a User (derived, not kept, for one that is its only session)."""
        for ukey, entry in self.users.items():
            yield ukey, entry if isinstance(entry, User) else self._derived_user(ukey, entry)

    def _derived_user(self, ukey: Key, sess: Session) -> User:
        """What a user that is its only session stands for: its roles, that session, no role
        change, kept until the longest absolute timeout past the session's absolute deadline
        (what the login made, and what restore derives)."""
        forget_at = sess.absolute_deadline + self.policy.max_absolute
        roles = self.intern(self.policy.known_roles(sess.roles))
        return User(ukey, roles, [sess.key[1]], (), forget_at)

    def first_seen(self, tenant: str, event_id: int) -> bool:
        """Whether this event id (the UUID's int) of ``tenant`` is new to the in-memory filter
        (of the last ``DEDUPE_CAPACITY`` ids); remembers it. An aborted batch forgets its ids."""
        tag = self._tenant_tags.get(tenant)
        if tag is None:
            tag = self._tag(tenant)
        seen: SeenId = tag | event_id if tag else (tenant, event_id)
        if seen in self._seen:
            return False
        if len(self._seen_order) >= DEDUPE_CAPACITY:
            self._seen.discard(self._seen_order.popleft())
        self._seen.add(seen)
        self._seen_order.append(seen)
        self._batch_ids.append(seen)
        return True

    def _tag(self, tenant: str) -> int:
        """The tenant's tag for ``first_seen``: a number above bit 128, or 0 past the bound."""
        tags = self._tenant_tags
        if len(tags) >= TAGGED_TENANTS:
            return 0
        tags[tenant] = tag = (len(tags) + 1) << 128
        return tag

    def emit(self, topic: str, key: str, value: dict[str, Any]) -> None:
        self.out.append(Emit(topic, key, value))

    def intern(self, value: Any) -> Any:
        """One shared object per equal value (roles, tenants, user types), up to a bound."""
        found = self._intern.get(value)
        if found is not None:
            return found
        if len(self._intern) < INTERN_CAPACITY:
            self._intern[value] = value
        return value
