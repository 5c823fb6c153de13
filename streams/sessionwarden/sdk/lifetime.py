"""A session's lifetime, checked by the service itself: the other half of the listener's bound.

    if not within_lifetime(issued_at, listener.max_lifetime_s):
        refuse()          # older than any session may be: the listener may have forgotten it

The revocation listener forgets a revocation ``max_lifetime_s`` after its ``effective_at``
(by default the policy's longest absolute timeout), on the contract that no session outlives
its absolute deadline. That is only true if the service refuses, by itself, every session (or
token) older than that: an id with no expiry, once its revocation is forgotten (24 h later, or
on a restart whose replay drops such records), would be served again. Record when each session
was issued (in the signed token, or the server-side session) and check it on every request.
"""

from __future__ import annotations

import math
import time

DEFAULT_SKEW_S = 30.0
"""How far in the future an issue time may lie (clocks of two instances disagree)."""


def lifetime_left(
    issued_at: float,
    max_lifetime_s: float,
    *,
    now: float | None = None,
    skew_s: float = DEFAULT_SKEW_S,
) -> float:
    """Seconds a session issued at ``issued_at`` (epoch seconds) may still be served: at most
    ``max_lifetime_s`` after its issue; ``0.0`` once that has passed, for an issue time more
    than ``skew_s`` in the future, and for a time that is not finite."""
    if not max_lifetime_s > 0:
        raise ValueError(f"max_lifetime_s must be positive, got {max_lifetime_s!r}")
    if not math.isfinite(issued_at):
        return 0.0
    now = time.time() if now is None else now
    if issued_at > now + skew_s:
        return 0.0
    return max(0.0, issued_at + max_lifetime_s - now)


def within_lifetime(
    issued_at: float,
    max_lifetime_s: float,
    *,
    now: float | None = None,
    skew_s: float = DEFAULT_SKEW_S,
) -> bool:
    """Whether a session issued at ``issued_at`` may still be served (see
    :func:`lifetime_left`); pass the listener's ``max_lifetime_s``, never more."""
    return lifetime_left(issued_at, max_lifetime_s, now=now, skew_s=skew_s) > 0.0
