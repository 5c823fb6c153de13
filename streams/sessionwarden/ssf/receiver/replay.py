"""Replay protection: every (issuer, jti) is remembered until its SET could no longer pass the
``iat`` window, in a bounded store.

A SET whose ``iat`` lies more than the window in the past is refused before its jti is looked
at, so a jti need be kept only until ``iat + window + leeway``; after that a replay is refused
by its age. ``claim`` reserves a jti while its events are published; ``commit`` keeps it (and
journals it, when a journal is given), ``release`` frees it when publishing failed, so the
transmitter's retry is not taken for a replay. While the store holds ``capacity`` live jtis a
new one is :class:`Unavailable` (the transmitter retries), never accepted unrecorded. The
capacity is shared equally by the ``issuers``: one transmitter sending all it may (a flood of
valid SETs, stream events that publish nothing) fills its own share, never another's. The
transmitters' lanes share one store: each call holds its lock for that call only.

The journal (one JSON line per committed jti, compacted when it is opened and whenever it holds
more than twice the live jtis, and at least 1,000 lines) makes the protection survive a
restart; without it a restart forgets the jtis of the last window.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import IO

import orjson

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(issuer, jti)."""
COMPACT_MIN_LINES = 1000


class Claim(Enum):
    NEW = "new"
    PENDING = "pending"  # being published by another request
    SEEN = "seen"  # committed before: a replay
    FULL = "full"


class JtiStore:
    """Live jtis with the time each may be forgotten; ``now`` is wall-clock time."""

    def __init__(self, capacity: int, journal: JtiJournal | None = None, issuers: int = 1) -> None:
        self.capacity = capacity
        self.share = max(1, capacity // max(1, issuers))
        """The live jtis one issuer may hold."""
        self._held: dict[str, int] = {}  # issuer -> live and pending jtis
        self._expires: dict[Key, float] = {}
        self._pending: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []
        self._journal = journal
        self._lock = threading.Lock()
        if journal is not None:
            for key, expires in journal.load():
                self._keep(key, expires)

    def __len__(self) -> int:
        return len(self._expires)

    def claim(self, key: Key, expires: float, now: float) -> Claim:
        with self._lock:
            self._forget(now)
            if key in self._pending:
                return Claim.PENDING
            if key in self._expires:
                return Claim.SEEN
            held = self._held.get(key[0], 0)
            if len(self._expires) + len(self._pending) >= self.capacity or held >= self.share:
                return Claim.FULL
            self._pending[key] = expires
            self._held[key[0]] = held + 1
            return Claim.NEW

    def commit(self, key: Key) -> None:
        """The SET's events were published: remember its jti (and journal it)."""
        with self._lock:
            expires = self._pending.pop(key)
            self._unhold(key)
            self._keep(key, expires)
            if self._journal is not None:
                self._journal.append(key, expires)
                if self._journal.lines > max(COMPACT_MIN_LINES, 2 * len(self._expires)):
                    self._journal.rewrite(self._expires.items())

    def release(self, key: Key) -> None:
        """Publishing failed: the transmitter may send the SET again."""
        with self._lock:
            if self._pending.pop(key, None) is not None:
                self._unhold(key)

    def _keep(self, key: Key, expires: float) -> None:
        if key not in self._expires:
            heapq.heappush(self._heap, (expires, key))
            self._held[key[0]] = self._held.get(key[0], 0) + 1
        self._expires[key] = expires

    def _unhold(self, key: Key) -> None:
        left = self._held.get(key[0], 0) - 1
        if left > 0:
            self._held[key[0]] = left
        else:
            self._held.pop(key[0], None)

    def _forget(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            if self._expires.pop(key, None) is not None:
                self._unhold(key)


class JtiJournal:
    """An append-only file of committed jtis: ``[issuer, jti, expires]`` per line, mode 0600.
    ``load`` keeps the lines still live at ``now`` and rewrites the file with only those."""

    def __init__(self, path: Path, now: float) -> None:
        self.path = path
        self._now = now
        self._file: IO[bytes] | None = None
        self.lines = 0

    def load(self) -> list[tuple[Key, float]]:
        live: list[tuple[Key, float]] = []
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b""
        bad = 0
        for line in raw.splitlines():
            try:
                issuer, jti, expires = orjson.loads(line)
                if isinstance(issuer, str) and isinstance(jti, str) and float(expires) > self._now:
                    live.append(((issuer, jti), float(expires)))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                bad += 1  # a line cut by a crash
        if bad:
            log.warning("jti journal: lines skipped", extra={"lines": bad, "path": str(self.path)})
        self.rewrite(live)
        return live

    def rewrite(self, entries: Iterable[tuple[Key, float]]) -> None:
        """Replace the file by ``entries`` (atomically) and append to it from now on."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        lines = [orjson.dumps([k[0], k[1], e]) + b"\n" for k, e in entries]
        with os.fdopen(fd, "wb") as out:
            out.writelines(lines)
        os.replace(tmp, self.path)
        self.lines = len(lines)
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open for appends

    def append(self, key: Key, expires: float) -> None:
        if self._file is None:
            raise RuntimeError("the journal is appended to before it is loaded")
        self._file.write(orjson.dumps([key[0], key[1], expires]) + b"\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
