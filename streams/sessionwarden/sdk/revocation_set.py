"""The current set of revoked sessions, with bounded lifetimes (pure: time is an argument).

A session is identified by (tenant, session_id): the same session id in two tenants names two
different sessions, and revoking one never revokes the other.
"""

from __future__ import annotations

import heapq
import sys
import threading
from typing import NamedTuple

from sessionwarden.contracts.outputs import Revocation

SessionKey = tuple[str, str]
"""(tenant, session_id)"""


class RevokedEntry(NamedTuple):
    expires_at: float
    """Wall-clock seconds after which the entry is forgotten."""
    revocation_id: str
    reason: str


class RevocationSet:
    """The revoked sessions, each forgotten ``max_lifetime_s`` after its ``effective_at``.

    Pure (time is an argument). A revocation is final: later records never un-revoke a session;
    a repeated revocation of a session replaces the entry and never shortens its lifetime.
    Sessions are keyed by the record's ``tenant`` and ``session_id`` fields (never by the
    Kafka record key).
    """

    def __init__(self, max_lifetime_s: float) -> None:
        if not max_lifetime_s > 0:
            raise ValueError(f"max_lifetime_s must be positive, got {max_lifetime_s!r}")
        self.max_lifetime_s = max_lifetime_s
        self._entries: dict[SessionKey, RevokedEntry] = {}
        self._expiry: list[tuple[float, SessionKey]] = []  # heap; stale items skipped when popped
        self._lock = threading.Lock()  # writers and snapshots; lookups need none

    def add(self, record: Revocation, now: float) -> bool:
        """Record a revocation; False if it has already expired (nothing is kept)."""
        expires = record.effective_at.timestamp() + self.max_lifetime_s
        if expires <= now:
            return False
        key = (sys.intern(record.tenant), record.session_id)
        with self._lock:
            old = self._entries.get(key)
            if old is not None and old.expires_at > expires:
                expires = old.expires_at
            reason = sys.intern(record.reason)
            self._entries[key] = RevokedEntry(expires, str(record.revocation_id), reason)
            heapq.heappush(self._expiry, (expires, key))
        return True

    def expire(self, now: float) -> int:
        """Forget every entry whose lifetime has passed; returns how many."""
        dropped = 0
        heap = self._expiry
        with self._lock:
            while heap and heap[0][0] <= now:
                _, key = heapq.heappop(heap)
                entry = self._entries.get(key)
                if entry is not None and entry.expires_at <= now:
                    del self._entries[key]
                    dropped += 1
        return dropped

    def contains(self, tenant: str, session_id: str) -> bool:
        return (tenant, session_id) in self._entries

    def get(self, tenant: str, session_id: str) -> RevokedEntry | None:
        return self._entries.get((tenant, session_id))

    def snapshot(self) -> dict[SessionKey, RevokedEntry]:
        with self._lock:
            return dict(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
