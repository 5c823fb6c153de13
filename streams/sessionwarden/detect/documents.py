"""Each user's detector state as one document, stamped with the audit position it holds.

A record changes only its own user's state, but that state spans four kinds of key: live
sessions, expiration and grant marks by event-time bucket, cooldowns (tables.py). Kept as
separate table keys, a kill could leave some of a record's changes in the changelog and lose
others, and records read again after the last commit were judged against state that already
held them, or records after them: a missed alert, another severity or withheld count, or an
alert an undisturbed run never raises. So the worker keeps one faust table, ``users``:

- ``(tenant, user_id)`` -> the user's document: every key of the four tables that belongs to
  the user, and ``applied``, the audit position ``[partition, offset]`` of the last record
  judged into it. A record's changes reach the changelog together or not at all.
- ``(partition,)`` -> ``{"offset": n, "emptied": [...]}``, the partition's marker: the last
  offset of a batch and the users whose documents it left empty, written after that batch's
  documents on the same changelog partition and before the deletes of the emptied ones.
  Kafka keeps a producer's records in order within a partition, so a marker in the changelog
  means every document of its batch (and of the batches before) is there too.

Judging a record at ``(partition, offset)``: if the partition's marker or the user's
document already holds it (offset at or below), its changes are in the state and its alerts
were delivered before they were written (the shell sends alerts first): it is skipped.
Otherwise the user's document is the state as of before the record (every record of the user
after the stamp was either not judged yet or changed nothing), so it is judged exactly as the
first time. A document a batch changed back to what the table holds is not written: its
records, read again, start from that same state.

A document left with nothing is named in the marker and deleted after it: a delete that
reached the changelog without the marker would make the batch's records, read again, see no
state instead of the state before them, and a marker without the delete after it still says
the document is empty (the partition's next marker names it again until it is deleted).

Each partition's marker also carries the partition's clock, the latest event time read on it.
A document expired at that clock (expiry.py: nothing in it can change the judgment of a record
within the lateness allowed) is judged as empty, and removed like an emptied one: named in a
marker, deleted after it; as is, past ``max_documents``, the document that expires first.

Marks of a kind are kept for the buckets that reads of the user's latest record may need
(``2 x window`` of event time before it), at most :data:`MAX_MARKS` of them; that, the cap on
live sessions and the cooldowns' cap on remembered triggers bound a document's size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from sessionwarden.contracts.codec import encode_dict
from sessionwarden.detect.expiry import NEVER, ExpiryIndex, Retention, expired
from sessionwarden.detect.tables import (
    COOLDOWNS,
    EXPIRATIONS,
    GRANTS,
    MAX_MARKS_PER_BUCKET,
    SESSIONS,
    TABLES,
    UserKey,
    Write,
    apply_writes,
)

log = logging.getLogger(__name__)

USERS: Final = "users"
MAX_MARKS: Final = MAX_MARKS_PER_BUCKET
"""A user keeps this many marks of a kind (its latest), over all its buckets."""
MARK_TABLES: Final = (EXPIRATIONS, GRANTS)
MIN_MARK_BYTES: Final = 40
"""No stored mark is shorter (its event id alone is 36 characters)."""
MAX_MARK_BYTES: Final = 192 * 1024
"""And in at most this many bytes per kind: with the live sessions (1,024 ids of up to 256
characters) and the cooldowns, a document stays well under Kafka's 1 MB record (a grant may
name 64 roles of 128 characters twice; 512 of them would not fit)."""

DEFAULT_MAX_DOCUMENTS: Final = 500_000
"""Documents a worker keeps of the partitions it reads, unless the settings say otherwise."""
DROP_BASE: Final = 64
DROP_MAX: Final = 1024
"""A batch removes at most ``DROP_BASE`` + 2 per record it read of a partition, and at most
``DROP_MAX``, documents of that partition (expired or evicted): bounded work per batch that
still outpaces the documents its records can create, and a marker naming them stays far under
Kafka's record limit (1,024 keys of 2 x 128 characters and the batch's own emptied users,
about 0.5 MB)."""

Position = tuple[int, int]
"""(audit partition, offset)."""


@dataclass(slots=True)
class UserDoc:
    """One user's keys of the four tables (the engine reads them as tables) and its stamp."""

    user: UserKey
    tables: dict[str, dict[Any, bytes]] = field(
        default_factory=lambda: {name: {} for name in TABLES}
    )
    applied: Position | None = None
    held: dict[str, dict[Any, bytes]] = field(
        default_factory=lambda: {name: {} for name in TABLES}, compare=False, repr=False
    )
    """The tables as the table held them: a batch that changed them back writes nothing."""
    expires: float | None = field(default=None, compare=False, repr=False)
    """The partition clock time at which nothing in it can change a judgment any more
    (expiry.py); None until the store needs it, and again after each change."""

    @property
    def changed(self) -> bool:
        return self.tables != self.held

    def holds(self, at: Position) -> bool:
        """Whether the record at ``at`` was judged into this document already."""
        return self.applied is not None and self.applied[0] == at[0] and at[1] <= self.applied[1]

    @property
    def empty(self) -> bool:
        return not any(self.tables.values())

    def prune(self, at: float, windows: Mapping[str, float]) -> None:
        """Drop the buckets that ended more than two windows before event time ``at`` (reads
        look back one window; the other is for records that arrive late), then the marks past
        the caps of each kind (:func:`_cap_marks`)."""
        for name in MARK_TABLES:
            buckets = self.tables[name]
            if not buckets:
                continue
            horizon = at - 2 * windows[name]
            for key in [k for k in buckets if k[1][1] < horizon]:
                del buckets[key]
            size = sum(len(raw) for raw in buckets.values())
            if size < MAX_MARKS * MIN_MARK_BYTES and size <= MAX_MARK_BYTES:
                continue  # too few bytes to hold more marks than the caps allow
            _cap_marks(buckets)

    def encode(self) -> bytes:
        sessions = self.tables[SESSIONS].get(self.user)
        doc: dict[str, Any] = {"applied": list(self.applied) if self.applied else None}
        if sessions:
            doc[SESSIONS] = orjson.Fragment(sessions)
        cooldowns = {key[2]: orjson.Fragment(raw) for key, raw in self.tables[COOLDOWNS].items()}
        if cooldowns:
            doc[COOLDOWNS] = cooldowns
        for name in MARK_TABLES:
            buckets = sorted(self.tables[name].items(), key=lambda item: item[0][1])
            if buckets:
                doc[name] = [[rng[0], rng[1], orjson.Fragment(raw)] for (_, rng), raw in buckets]
        return encode_dict(doc)

    @classmethod
    def decode(cls, user: UserKey, raw: bytes) -> UserDoc:
        doc = orjson.loads(raw)
        applied = doc.get("applied")
        out = cls(user, applied=(int(applied[0]), int(applied[1])) if applied else None)
        if SESSIONS in doc:
            out.tables[SESSIONS][user] = orjson.dumps(doc[SESSIONS])
        for kind, value in doc.get(COOLDOWNS, {}).items():
            out.tables[COOLDOWNS][(*user, kind)] = orjson.dumps(value)
        for name in MARK_TABLES:
            for start, end, value in doc.get(name, ()):
                out.tables[name][(user, (start, end))] = orjson.dumps(value)
        out.held = {name: dict(table) for name, table in out.tables.items()}
        return out


def _cap_marks(buckets: dict[Any, bytes]) -> None:
    """Keep the latest marks of one kind: at most :data:`MAX_MARKS`, in at most
    :data:`MAX_MARK_BYTES` (earliest buckets go first, within a bucket the first stored)."""
    keep: dict[Any, list[Any]] = {}
    count = size = 0
    for key in sorted(buckets, key=lambda k: k[1], reverse=True):
        kept: list[Any] = []
        for mark in reversed(orjson.loads(buckets[key])["marks"]):
            size += len(orjson.dumps(mark)) + 1
            count += 1
            if count > MAX_MARKS or size > MAX_MARK_BYTES:
                break
            kept.append(mark)
        keep[key] = kept[::-1]
        if count > MAX_MARKS or size > MAX_MARK_BYTES:
            break
    for key in list(buckets):
        if keep.get(key):
            buckets[key] = encode_dict({"marks": keep[key]})
        else:
            del buckets[key]


def marker_key(partition: int) -> tuple[int]:
    return (partition,)


def is_user_key(key: Any) -> bool:
    return isinstance(key, tuple) and len(key) == 2


@dataclass(frozen=True, slots=True)
class Marker:
    """What a partition's marker says: every record up to ``offset`` is in the table, and the
    documents of ``emptied`` were left empty by that batch (their deletes come after it)."""

    offset: int
    emptied: frozenset[UserKey] = frozenset()
    clock: float = NEVER
    """The partition's clock after ``offset``: the latest event time read on it."""

    def encode(self) -> bytes:
        doc: dict[str, Any] = {"offset": self.offset}
        if self.emptied:
            doc["emptied"] = sorted(self.emptied)
        if self.clock != NEVER:
            doc["clock"] = self.clock
        return encode_dict(doc)

    @classmethod
    def decode(cls, raw: bytes) -> Marker:
        doc = orjson.loads(raw)
        emptied = frozenset((str(t), str(u)) for t, u in doc.get("emptied", ()))
        return cls(int(doc["offset"]), emptied, float(doc.get("clock", NEVER)))


@dataclass(frozen=True, slots=True)
class Flushed:
    """What a batch's :meth:`UserStore.flush` did."""

    written: int = 0
    """Table records written: documents, markers, deletes."""
    expired: int = 0
    """Documents removed because nothing in them could change a judgment any more."""
    evicted: int = 0
    """Documents removed, still live, because the worker held its maximum."""
    documents: int = 0
    """Documents held of the partitions read (after this batch)."""


@dataclass(slots=True)
class _Plan:
    """One partition's part of a flush."""

    offset: int
    last: Any
    writes: list[tuple[UserKey, Any]]
    dropped: list[UserKey]
    """Emptied, expired and evicted users whose documents the table holds: named in the
    marker, deleted after it."""
    budget: int
    must_mark: bool
    expired: int = 0
    evicted: int = 0


class UserStore:
    """The ``users`` table seen through one batch at a time.

    :meth:`to_judge` hands out a user's document to judge a record into (the batch's working
    copy), or None for a record the state holds already; :meth:`touched` notes that a record
    was judged into it. Nothing reaches the table until :meth:`flush`, after the batch's alerts
    were delivered.

    Each audit partition has a clock, the latest event time read on it, kept in its marker. A
    document expired at its partition's clock (expiry.py) is judged as empty, and removed by a
    flush like an emptied one: named in the marker, deleted after it. :meth:`flush` also keeps
    the documents of the partitions read at ``max_documents`` at most, removing those that
    expire first.
    """

    def __init__(
        self,
        table: MutableMapping[Any, bytes],
        retention: Retention,
        max_documents: int = DEFAULT_MAX_DOCUMENTS,
    ) -> None:
        self.table = table
        self.retention = retention
        self.max_documents = max_documents
        self._docs: dict[UserKey, UserDoc] = {}
        self._changed: dict[int, dict[UserKey, Any]] = {}
        """partition -> user -> the event that changed the user's document last."""
        self._seen: dict[int, tuple[int, Any]] = {}
        """partition -> (last offset, its event) of this batch."""
        self._read: dict[int, int] = {}
        """partition -> records of this batch."""
        self._markers: dict[int, Marker | None] = {}
        self._clocks: dict[int, float] = {}
        self._index: ExpiryIndex | None = None
        self._partitions: set[int] = set()
        """Partitions read since the index was built: their documents count to the maximum."""

    @property
    def windows(self) -> Mapping[str, float]:
        return self.retention.windows

    def marker(self, partition: int) -> Marker | None:
        if partition not in self._markers:
            raw = self.table.get(marker_key(partition))
            self._markers[partition] = None if raw is None else Marker.decode(raw)
        return self._markers[partition]

    def clock(self, partition: int) -> float:
        """The partition's clock: its marker's, moved on by this batch's records."""
        if partition not in self._clocks:
            marker = self.marker(partition)
            self._clocks[partition] = NEVER if marker is None else marker.clock
        return self._clocks[partition]

    def forget_index(self) -> None:
        """The table changed under the store (a rebalance restored partitions): the next
        flush indexes it again."""
        self._index = None
        self._partitions.clear()

    def seen(self, at: Position, event: Any) -> None:
        """Note a record of the batch (judged, skipped or undecodable): the marker covers it."""
        last = self._seen.get(at[0])
        if last is None or at[1] >= last[0]:
            self._seen[at[0]] = (at[1], event)
        self._read[at[0]] = self._read.get(at[0], 0) + 1

    def to_judge(self, user: UserKey, at: Position, when: float) -> UserDoc | None:
        """The user's document to judge the record at ``at`` (event time ``when``) into, or
        None when the state holds that record already (read again after a kill: at or below
        the partition's marker or the document's stamp). Every record moves its partition's
        clock, the records the state holds too (in offset order, as the first time)."""
        clock = max(self.clock(at[0]), when)
        self._clocks[at[0]] = clock
        marker = self.marker(at[0])
        if marker is not None and at[1] <= marker.offset:
            return None
        doc = self._docs.get(user)
        if doc is None:
            raw = self.table.get(user)
            doc = UserDoc(user) if raw is None else UserDoc.decode(user, raw)
            if marker is not None and user in marker.emptied and not self._after(doc, marker):
                doc = _emptied(doc)  # its delete did not reach the table; the marker did
            self._docs[user] = doc
        if doc.holds(at):
            return None
        if not doc.empty and expired(self._expires(doc), clock):
            # nothing in it can change this judgment: judged as the empty document its removal
            # leaves, whether a flush removed it yet or not
            doc = self._docs[user] = _emptied(doc)
        return doc

    def _expires(self, doc: UserDoc) -> float:
        if doc.expires is None:
            doc.expires = self.retention.expires(doc.tables)
        return doc.expires

    def _stale(self, partition: int, changed: Mapping[UserKey, Any]) -> list[UserKey]:
        """Users the partition's marker names as emptied whose documents the table still
        holds (a kill came between the marker and their deletes), not judged in this batch:
        the next marker names them again and they are deleted after it."""
        marker = self.marker(partition)
        if marker is None:
            return []
        return [
            user
            for user in sorted(marker.emptied)
            if user not in changed
            and (raw := self.table.get(user)) is not None
            and not self._after(UserDoc.decode(user, raw), marker)
        ]

    @staticmethod
    def _after(doc: UserDoc, marker: Marker) -> bool:
        return doc.applied is not None and doc.applied[1] > marker.offset

    def touched(
        self, doc: UserDoc, at: Position, when: float, writes: list[Write], event: Any
    ) -> None:
        """The record at ``at`` (event time ``when``) was judged into ``doc`` with ``writes``."""
        doc.applied = at
        if writes:
            apply_writes(doc.tables, writes)
            doc.prune(when, self.windows)
            doc.expires = None
            self._changed.setdefault(at[0], {})[doc.user] = event

    def flush(self, make_current: Callable[[Any], None] = lambda _: None) -> Flushed:
        """Write the batch's changes and remove what expired; returns what was done.

        Per partition read, in this order (one changelog partition keeps it):

        1. each changed document once, with its last value and stamp;
        2. the partition's marker: the batch's last offset there, the partition's clock, and
           the users whose documents are removed: those the batch left empty or expired
           (those the table holds; and those the last marker named whose deletes a kill
           lost), those expired at the clock (the earliest first, at most a budget per
           batch), and, while the worker holds more than ``max_documents``, those that expire
           first;
        3. the deletes of those documents.

        A partition whose records changed nothing, moved no clock and removed nothing gets no
        writes. A delete that reached the changelog without the marker before it would make
        the batch's records, read again, see no state instead of the state before them; a
        marker without the delete after it still tells the document is empty.
        ``make_current(event)`` runs before the writes each event made (faust takes a write's
        changelog partition from the current event)."""
        index = self._indexed()
        self._partitions.update(self._seen)
        plans = {
            partition: self._plan(index, partition, offset, last)
            for partition, (offset, last) in sorted(self._seen.items())
        }
        over = index.count(self._partitions) - self.max_documents
        if over > 0:
            budgets = {p: plan.budget for p, plan in plans.items()}
            for partition, user in index.earliest(budgets, over):
                plan = plans[partition]
                plan.evicted += 1
                plan.writes = [(u, e) for u, e in plan.writes if u != user]
                if user in self.table:
                    plan.dropped.append(user)
        written = 0
        for partition, plan in plans.items():
            if not (plan.must_mark or plan.writes or plan.dropped):
                continue  # read again, its records change nothing again
            for user, event in plan.writes:
                make_current(event)
                self.table[user] = _kept(self._docs[user].encode())
                written += 1
            make_current(plan.last)
            marker = Marker(plan.offset, frozenset(plan.dropped), self._clocks[partition])
            self.table[marker_key(partition)] = _kept(marker.encode())
            written += 1
            for user in plan.dropped:
                del self.table[user]
                written += 1
        self._docs.clear()
        self._changed.clear()
        self._seen.clear()
        self._read.clear()
        self._markers.clear()
        self._clocks.clear()
        return Flushed(
            written,
            sum(plan.expired for plan in plans.values()),
            sum(plan.evicted for plan in plans.values()),
            index.count(self._partitions),
        )

    def _plan(self, index: ExpiryIndex, partition: int, offset: int, last: Any) -> _Plan:
        """What the batch writes and removes on ``partition``, the index updated for it."""
        changed = self._changed.get(partition, {})
        clock = self.clock(partition)
        marker = self.marker(partition)
        dropped = self._stale(partition, changed)
        writes: list[tuple[UserKey, Any]] = []
        for user, event in changed.items():
            doc = self._docs[user]
            if not doc.changed:
                continue  # changed back within the batch: its records read again do the same
            expires = self._expires(doc)
            if doc.empty or expired(expires, clock):
                if user in self.table:
                    dropped.append(user)
                continue
            writes.append((user, event))
            index.put(partition, user, expires)
        for user in dropped:
            index.discard(partition, user)
        budget = min(DROP_MAX, DROP_BASE + 2 * self._read.get(partition, 0)) - len(dropped)
        due = [user for user in index.due(partition, clock, max(budget, 0)) if user in self.table]
        dropped.extend(due)
        return _Plan(
            offset,
            last,
            writes,
            dropped,
            max(budget - len(due), 0),
            must_mark=bool(changed) or clock > (NEVER if marker is None else marker.clock),
            expired=len(due),
        )

    def _indexed(self) -> ExpiryIndex:
        """The expiry index, built from the table when there is none yet (a new store, or
        after a rebalance): one read of every document."""
        if self._index is None:
            self._index = ExpiryIndex()
            unreadable = 0
            for key, raw in list(self.table.items()):
                if not is_user_key(key):
                    continue
                try:
                    doc = UserDoc.decode(key, raw)
                    expires = self.retention.expires(doc.tables)
                except Exception:  # its user's records are skipped too (see the shell)
                    unreadable += 1
                    continue
                if doc.applied is not None:
                    self._index.put(doc.applied[0], key, expires)
            if unreadable:
                log.warning(
                    "user documents that cannot be read are kept as they are",
                    extra={"documents": unreadable},
                )
        return self._index


def _emptied(doc: UserDoc) -> UserDoc:
    """The empty document that replaces ``doc``, written over it or deleted."""
    out = UserDoc(doc.user)
    out.held = doc.held
    return out


def _kept(raw: bytes) -> bytes:
    """A copy of ``raw`` the size of its content. orjson 3.13 returns bytes that hold about
    4 KB of memory each, whatever their length: kept in the table as written, a document of
    100 bytes cost 4 KB of memory."""
    return memoryview(raw).tobytes()
