"""The transmitter's durable state: streams, their subjects and their queued events, in SQLite.

One file in the state directory, in WAL mode with ``synchronous=FULL``: a committed change
survives a crash of the process and of the machine. Every event is one row keyed by
``(stream_id, jti)``: queuing the same cause again (a record read twice after a crash, before
its Kafka offset was committed) inserts nothing, so nothing is delivered as new twice. A row
stays after delivery, acknowledgement or refusal, as the proof of it, until its retention
ends; a row still pending when its retention ends is marked expired and counted.

One connection behind a lock: the Kafka reader, the delivery threads and the HTTP handlers
each hold it for one short transaction. A write to a stream (an update, a subject, an event)
finds the stream in its own transaction: a stream deleted meanwhile is not written again, and
no subject or event is left behind without one (:class:`NoSuchStream`). A change of a stream's
document reads, changes and writes it in one transaction (:meth:`Store.change_stream`), so
two changes at once are applied one after the other and neither is lost.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sessionwarden.errors import SessionwardenError
from sessionwarden.ssf.subjects import canonical
from sessionwarden.ssf.transmitter.sets import AddedSubjects
from sessionwarden.ssf.transmitter.streams import MAX_SUBJECTS, Stream

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS subjects (
    stream_id TEXT NOT NULL,
    subject BLOB NOT NULL,
    PRIMARY KEY (stream_id, subject)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    token BLOB NOT NULL,
    queued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    err TEXT,
    UNIQUE (stream_id, jti)
);
CREATE INDEX IF NOT EXISTS events_pending ON events (stream_id, state, next_at, seq);
"""
FILE_NAME = "ssf-transmitter.sqlite3"


class NoSuchStream(SessionwardenError):
    """The stream written to is not stored (deleted since the caller read it)."""


@dataclass(frozen=True, slots=True)
class Queued:
    stream_id: str
    jti: str
    token: bytes
    attempts: int
    queued_at: float


@dataclass(frozen=True, slots=True)
class Changed:
    """A stream's document as a change stored it."""

    stream: Stream
    dropped: int
    """Pending events dropped with it: a stream stored disabled holds none."""


class Store:
    """The SQLite file in ``state_dir`` (created with mode 0700)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / FILE_NAME
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._subjects_version = 0  # bumped by every change of the subjects
        self._subjects: tuple[int, dict[str, AddedSubjects]] | None = None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- streams and subjects -------------------------------------------------------------

    def create_stream(self, stream: Stream, max_streams: int, max_per_owner: int) -> str | None:
        """Add a new stream unless its owner has ``max_per_owner`` streams or the transmitter
        ``max_streams``: then None is returned and nothing added, else the stream's id.
        Counted and inserted in one transaction: requests at once cannot pass the count
        together."""
        doc = _doc(stream)
        with self._txn() as db:
            ((total, own),) = db.execute(
                "SELECT count(*), coalesce(sum(owner = ?), 0) FROM streams", (stream.owner,)
            ).fetchall()
            if total >= max_streams or own >= max_per_owner:
                return None
            db.execute(
                "INSERT INTO streams (stream_id, owner, doc) VALUES (?, ?, ?)",
                (stream.stream_id, stream.owner, doc),
            )
        return stream.stream_id

    def change_stream(
        self, stream_id: str, owner: str, change: Callable[[Stream], Stream]
    ) -> Changed:
        """Read the owner's stream, ``change`` it and store the result, in one transaction:
        a change made at the same time (an update, a status, a verification) is applied
        before or after this one, never overwritten by a document read before it. ``change``
        is a pure function run under the store's lock (no I/O, no call to the store); an
        exception from it writes nothing and goes to the caller. NoSuchStream when the owner
        has no stream of that id: a change never brings a deleted stream back. A stream stored
        disabled has its pending events dropped in the same transaction."""
        with self._txn() as db:
            row = db.execute(
                "SELECT doc FROM streams WHERE stream_id = ? AND owner = ?", (stream_id, owner)
            ).fetchone()
            if row is None:
                raise NoSuchStream(stream_id)
            stream = change(_stream(row[0]))
            if (stream.stream_id, stream.owner) != (stream_id, owner):
                raise ValueError("a change keeps the stream's id and owner")
            db.execute("UPDATE streams SET doc = ? WHERE stream_id = ?", (_doc(stream), stream_id))
            dropped = 0
            if not stream.holds_events:
                dropped = db.execute(
                    "UPDATE events SET state = 'dropped' WHERE stream_id = ? AND state = 'pending'",
                    (stream_id,),
                ).rowcount
        return Changed(stream, dropped)

    def streams(self, owner: str | None = None) -> list[Stream]:
        with self._txn() as db:
            if owner is None:
                rows = db.execute("SELECT doc FROM streams ORDER BY rowid").fetchall()
            else:
                rows = db.execute(
                    "SELECT doc FROM streams WHERE owner = ? ORDER BY rowid", (owner,)
                ).fetchall()
        return [_stream(doc) for (doc,) in rows]

    def stream(self, stream_id: str) -> Stream | None:
        with self._txn() as db:
            row = db.execute("SELECT doc FROM streams WHERE stream_id = ?", (stream_id,)).fetchone()
        return None if row is None else _stream(row[0])

    def delete_stream(self, stream_id: str) -> None:
        with self._txn() as db:
            for table in ("streams", "subjects", "events"):
                db.execute(f"DELETE FROM {table} WHERE stream_id = ?", (stream_id,))
            self._subjects_version += 1

    def add_subject(
        self, stream_id: str, subject: dict[str, Any], limit: int = MAX_SUBJECTS
    ) -> bool:
        """Add a subject to the stream unless it has ``limit`` others already (one it holds is
        added again, a no-op). False: full, nothing added. Counted and inserted in one
        transaction: adds at once cannot pass the count together, nor add to a stream deleted
        meanwhile (NoSuchStream)."""
        row = canonical(subject)
        with self._txn() as db:
            _exists(db, stream_id)
            if db.execute(
                "SELECT 1 FROM subjects WHERE stream_id = ? AND subject = ?", (stream_id, row)
            ).fetchone():
                return True
            (n,) = db.execute(
                "SELECT count(*) FROM subjects WHERE stream_id = ?", (stream_id,)
            ).fetchone()
            if n >= limit:
                return False
            db.execute("INSERT INTO subjects (stream_id, subject) VALUES (?, ?)", (stream_id, row))
            self._subjects_version += 1
        return True

    def remove_subject(self, stream_id: str, subject: dict[str, Any]) -> bool:
        """Whether the stream held the subject; NoSuchStream when there is no stream."""
        with self._txn() as db:
            _exists(db, stream_id)
            cur = db.execute(
                "DELETE FROM subjects WHERE stream_id = ? AND subject = ?",
                (stream_id, canonical(subject)),
            )
            self._subjects_version += 1
        return cur.rowcount > 0

    def subjects(self) -> dict[str, AddedSubjects]:
        """Every stream's added subjects, indexed. The Kafka reader asks for them every batch:
        they are read from the file again only after a change (a stream's 10,000 subjects,
        times its streams, were read and parsed each time). The answer is shared: read only."""
        with self._txn() as db:
            cached, version = self._subjects, self._subjects_version
            if cached is not None and cached[0] == version:
                return cached[1]
            rows = db.execute("SELECT stream_id, subject FROM subjects").fetchall()
        found: dict[str, AddedSubjects] = {}
        for stream_id, subject in rows:
            found.setdefault(stream_id, AddedSubjects()).add_canonical(subject)
        with self._lock:
            if self._subjects_version == version:
                self._subjects = (version, found)
        return found

    # --- events ---------------------------------------------------------------------------

    def enqueue(
        self,
        rows: Iterable[tuple[str, str, bytes]],
        now: float,
        keep_s: float | Mapping[str, float],
    ) -> int:
        """Queue ``(stream_id, jti, token)`` rows in one transaction, each kept ``keep_s``
        (one retention for all, or one per stream id); a row whose ``(stream_id, jti)`` is
        already known (queued, delivered or refused) is skipped, and so is one for a stream
        no longer stored (deleted since its rows were made). Returns how many were new."""
        new = 0
        with self._txn() as db:
            for stream_id, jti, token in rows:
                keep = keep_s if isinstance(keep_s, float | int) else keep_s[stream_id]
                cur = db.execute(
                    "INSERT OR IGNORE INTO events (stream_id, jti, token, queued_at, expires_at,"
                    " next_at) SELECT ?, ?, ?, ?, ?, ?"
                    " WHERE EXISTS (SELECT 1 FROM streams WHERE stream_id = ?)",
                    (stream_id, jti, token, now, now + keep, now, stream_id),
                )
                new += cur.rowcount
        return new

    def due(self, stream_id: str, now: float, limit: int) -> list[Queued]:
        """Pending events of the stream whose next try is due, oldest first."""
        with self._txn() as db:
            rows = db.execute(
                "SELECT stream_id, jti, token, attempts, queued_at FROM events WHERE stream_id = ?"
                " AND state = 'pending' AND next_at <= ? AND expires_at > ? ORDER BY seq LIMIT ?",
                (stream_id, now, now, limit),
            ).fetchall()
        return [Queued(*row) for row in rows]

    def next_due(self, stream_id: str) -> float | None:
        with self._txn() as db:
            (at,) = db.execute(
                "SELECT min(next_at) FROM events WHERE stream_id = ? AND state = 'pending'",
                (stream_id,),
            ).fetchone()
        return None if at is None else float(at)

    def settle(self, stream_id: str, jti: str, state: str, err: str | None = None) -> bool:
        """Mark a pending event delivered (pushed, or acknowledged) or refused (with its
        error). Returns False when it was not pending."""
        return self.settle_many(stream_id, [(jti, state, err)]) > 0

    def settle_many(self, stream_id: str, outcomes: Iterable[tuple[str, str, str | None]]) -> int:
        """:meth:`settle` each ``(jti, state, err)`` in one transaction (a poll acknowledges
        up to 1,000 SETs: one synchronous commit, not one each). Returns how many were
        pending."""
        settled = 0
        with self._txn() as db:
            for jti, state, err in outcomes:
                cur = db.execute(
                    "UPDATE events SET state = ?, err = ? WHERE stream_id = ? AND jti = ?"
                    " AND state = 'pending'",
                    (state, err, stream_id, jti),
                )
                settled += cur.rowcount
        return settled

    def retry_at(self, stream_id: str, jti: str, attempts: int, next_at: float) -> None:
        with self._txn() as db:
            db.execute(
                "UPDATE events SET attempts = ?, next_at = ? WHERE stream_id = ? AND jti = ?"
                " AND state = 'pending'",
                (attempts, next_at, stream_id, jti),
            )

    def pending(self, stream_id: str, now: float, limit: int) -> tuple[list[Queued], bool]:
        """Unacknowledged events of a poll stream, oldest first, and whether more wait."""
        with self._txn() as db:
            rows = db.execute(
                "SELECT stream_id, jti, token, attempts, queued_at FROM events WHERE stream_id = ?"
                " AND state = 'pending' AND expires_at > ? ORDER BY seq LIMIT ?",
                (stream_id, now, limit + 1),
            ).fetchall()
        return [Queued(*row) for row in rows[:limit]], len(rows) > limit

    def states(self, stream_id: str) -> dict[str, int]:
        """How many of the stream's events are in each state."""
        with self._txn() as db:
            rows = db.execute(
                "SELECT state, count(*) FROM events WHERE stream_id = ? GROUP BY state",
                (stream_id,),
            ).fetchall()
        return {state: int(n) for state, n in rows}

    def expire(self, now: float, keep_s: float) -> int:
        """Mark events whose retention ended expired (returns how many; each event carries
        its stream's retention), and forget settled events older than ``keep_s`` (the
        transmitter's retention, the longest of any stream)."""
        with self._txn() as db:
            cur = db.execute(
                "UPDATE events SET state = 'expired' WHERE state = 'pending' AND expires_at <= ?",
                (now,),
            )
            db.execute(
                "DELETE FROM events WHERE state != 'pending' AND queued_at < ?", (now - keep_s,)
            )
        return cur.rowcount


def _exists(db: sqlite3.Connection, stream_id: str) -> None:
    if db.execute("SELECT 1 FROM streams WHERE stream_id = ?", (stream_id,)).fetchone() is None:
        raise NoSuchStream(stream_id)


def _doc(stream: Stream) -> bytes:
    return orjson.dumps(dataclasses.asdict(stream))


def _stream(doc: bytes) -> Stream:
    data = orjson.loads(doc)
    data["events_requested"] = tuple(data["events_requested"])
    return Stream(**data)
