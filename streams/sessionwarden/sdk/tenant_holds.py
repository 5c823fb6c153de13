"""Tenants held by a mass revocation (``tenant_revocation`` records), pure: time is an argument.

A ``tenant_revocation`` says every session of the tenant held on one enforcer partition, up to
the command's append time, is revoked; the per-session revocations follow over the next
transactions, then a ``complete`` copy in a transaction after the last of them. A subscriber
knows no session's start, so it refuses every session of the tenant while a hold stands: from
the first copy until it has read the whole topic past the complete one (the per-session
records are keyed by session and land on every partition of the topic, so the complete copy
being read proves nothing about the others: a freshness question asked after it was read,
answered and reached, does). A session that began after the command is refused for that
while, never ended. Holds are forgotten like revocations, ``max_lifetime_s`` after their
``effective_at``.

A complete copy without a hold before it (read during the bootstrap, the first copy compacted
away) holds nothing: the listener answers nothing until the bootstrap has read everything
committed before it began, the per-session records included.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from sessionwarden.contracts.outputs import TenantRevocation

HoldKey = tuple[str, int]
"""(tenant, enforcer partition)"""


class Hold(NamedTuple):
    expires_at: float
    """Wall-clock seconds after which the hold is forgotten."""
    revocation_id: str
    released_at: float | None
    """Monotonic time the complete copy was read (None: not yet)."""


class TenantHolds:
    """The tenants a subscriber refuses wholesale; see the module."""

    def __init__(self, max_lifetime_s: float) -> None:
        if not max_lifetime_s > 0:
            raise ValueError(f"max_lifetime_s must be positive, got {max_lifetime_s!r}")
        self.max_lifetime_s = max_lifetime_s
        self._holds: dict[HoldKey, Hold] = {}
        self._tenants: dict[str, int] = {}  # tenant -> holds standing (lookups need no lock)
        self._lock = threading.Lock()

    def add(self, record: TenantRevocation, now: float, read_at: float) -> bool:
        """Take a copy read at monotonic ``read_at``; False if it has expired already."""
        expires = record.effective_at.timestamp() + self.max_lifetime_s
        if expires <= now:
            return False
        key = (record.tenant, record.partition)
        with self._lock:
            old = self._holds.get(key)
            if record.complete:
                if old is not None and old.released_at is None:
                    self._holds[key] = old._replace(released_at=read_at)
                return True
            if old is None:
                self._tenants[record.tenant] = self._tenants.get(record.tenant, 0) + 1
            self._holds[key] = Hold(expires, str(record.revocation_id), None)
        return True

    def release(self, fresh_as_of: float | None, now: float) -> int:
        """Drop the holds whose complete copy was read before ``fresh_as_of`` (the monotonic
        time of a freshness question since reached: everything before it is applied), and the
        expired ones (wall clock ``now``). Returns how many went."""
        with self._lock:
            gone = [
                key
                for key, hold in self._holds.items()
                if hold.expires_at <= now
                or (
                    hold.released_at is not None
                    and fresh_as_of is not None
                    and hold.released_at < fresh_as_of
                )
            ]
            for key in gone:
                del self._holds[key]
                left = self._tenants[key[0]] - 1
                if left:
                    self._tenants[key[0]] = left
                else:
                    del self._tenants[key[0]]
        return len(gone)

    def holds(self, tenant: str) -> bool:
        return tenant in self._tenants

    def get(self, tenant: str) -> Hold | None:
        """One standing hold of the tenant, or None."""
        with self._lock:
            return next((h for (t, _), h in self._holds.items() if t == tenant), None)

    def __len__(self) -> int:
        return len(self._holds)
