"""The current set of revoked sessions, with bounded lifetimes (pure: time is an argument)."""

from __future__ import annotations

import heapq
import sys
import threading
from typing import NamedTuple

from schemas.outputs import Revocation


class RevokedEntry(NamedTuple):
    expires_at: float
    """Wall-clock seconds after which the entry is forgotten."""
    revocation_id: str
    reason: str


class RevocationSet:
    """The revoked sessions, each forgotten ``max_lifetime_s`` after its ``effective_at``.

    Pure (time is an argument). A revocation is final: later records never un-revoke a session;
    a repeated revocation of a session replaces the entry and never shortens its lifetime.
    """

    def __init__(self, max_lifetime_s: float) -> None:
        if not max_lifetime_s > 0:
            raise ValueError(f"max_lifetime_s must be positive, got {max_lifetime_s!r}")
        self.max_lifetime_s = max_lifetime_s
        self._entries: dict[str, RevokedEntry] = {}
        self._expiry: list[tuple[float, str]] = []  # heap; stale items are skipped when popped
        self._lock = threading.Lock()  # writers and snapshots; lookups need none

    def add(self, record: Revocation, now: float) -> bool:
        """Record a revocation; False if it has already expired (nothing is kept)."""
        expires = record.effective_at.timestamp() + self.max_lifetime_s
        if expires <= now:
            return False
        sid = record.session_id
        with self._lock:
            old = self._entries.get(sid)
            if old is not None and old.expires_at > expires:
                expires = old.expires_at
            reason = sys.intern(record.reason)
            self._entries[sid] = RevokedEntry(expires, str(record.revocation_id), reason)
            heapq.heappush(self._expiry, (expires, sid))
        return True

    def expire(self, now: float) -> int:
        """Forget every entry whose lifetime has passed; returns how many."""
        dropped = 0
        heap = self._expiry
        with self._lock:
            while heap and heap[0][0] <= now:
                _, sid = heapq.heappop(heap)
                entry = self._entries.get(sid)
                if entry is not None and entry.expires_at <= now:
                    del self._entries[sid]
                    dropped += 1
        return dropped

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._entries

    def get(self, session_id: str) -> RevokedEntry | None:
        return self._entries.get(session_id)

    def snapshot(self) -> dict[str, RevokedEntry]:
        with self._lock:
            return dict(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
