"""When to ask the identity provider again: the pure policy behind the actuator's retries.

An answer is :func:`classify`-ed into a :class:`Verdict`: done (the session is ended, or was
already), again (the provider is down, overloaded or refuses this account for now: retried
with backoff, never dropped, since a revocation dropped is a session left alive), or rejected
(the request itself is wrong: retrying cannot help, the record is skipped and audited).
:class:`Pending` holds the requests of one batch with their next attempt times, on a clock the
caller gives."""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar


class Verdict(enum.Enum):
    ENDED = "ended"
    """The provider ended the session now (204)."""
    ALREADY_ENDED = "already_ended"
    """The provider holds no such session (404): ended before, by anyone, or never its own."""
    AGAIN = "again"
    """Not done: ask again after the backoff."""
    REAUTH = "reauth"
    """The service account's token was refused (401): get a new one, then ask again."""
    REJECTED = "rejected"
    """The provider refuses the request itself (another 4xx): asking again cannot help."""

    @property
    def final(self) -> bool:
        return self in (Verdict.ENDED, Verdict.ALREADY_ENDED, Verdict.REJECTED)


def classify(status: int | None) -> Verdict:
    """The verdict on an answer's HTTP status; None: no answer (refused, reset, timed out).
    403 is asked again: a role taken from the service account is an operator's mistake to
    fix, and the revocations wait for it rather than being lost."""
    if status is None:
        return Verdict.AGAIN
    if 200 <= status < 300:
        return Verdict.ENDED
    if status == 404:
        return Verdict.ALREADY_ENDED
    if status == 401:
        return Verdict.REAUTH
    if status in (403, 408, 409, 425, 429) or status >= 500:
        return Verdict.AGAIN
    return Verdict.REJECTED


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with equal jitter: the n-th failure waits between half and all of
    ``min(max_s, base_s * 2**(n-1))``; ``rand`` is in [0, 1)."""

    base_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.max_s:
            raise ValueError("need 0 < base_s <= max_s")

    def delay(self, failures: int, rand: float) -> float:
        if failures < 1:
            return 0.0
        ceiling = min(self.max_s, self.base_s * 2.0 ** min(failures - 1, 62))
        return ceiling / 2 + ceiling / 2 * rand


K = TypeVar("K", bound=Hashable)


@dataclass
class _Entry:
    failures: int = 0
    next_at: float = 0.0


@dataclass
class Pending(Generic[K]):
    """The requests of one batch not yet answered for good. ``due(now)`` gives those to send;
    each answer goes to ``settle`` (final) or ``failed`` (asked again after the backoff)."""

    backoff: Backoff
    rand: Callable[[], float]
    _entries: dict[K, _Entry] = field(default_factory=dict)

    def add(self, keys: Iterable[K], now: float) -> None:
        for key in keys:
            self._entries.setdefault(key, _Entry(next_at=now))

    def due(self, now: float) -> list[K]:
        return [k for k, e in self._entries.items() if e.next_at <= now]

    def settle(self, key: K) -> int:
        """The request is answered for good; returns how many times it had failed."""
        return self._entries.pop(key).failures

    def failed(self, key: K, now: float) -> float:
        """The request failed again; returns when to send it next."""
        entry = self._entries[key]
        entry.failures += 1
        entry.next_at = now + self.backoff.delay(entry.failures, self.rand())
        return entry.next_at

    def failures(self, key: K) -> int:
        return self._entries[key].failures

    def next_at(self) -> float | None:
        return min((e.next_at for e in self._entries.values()), default=None)

    def __len__(self) -> int:
        return len(self._entries)
