"""Fault modes of `sessionwarden simulate` (pure, seeded): what real producers do to events.

- ``skew``: a user's producer clock runs ahead or behind by ``s`` seconds, inside the policy's
  clock-skew tolerance; every stamp of that user (``occurred_at``, ``auth_time``) moves.
- ``reorder``: events of one user are appended out of order: a logout before its login, a
  role removal before a late login carrying the role, an older grant after a newer removal,
  a ``user_revoked`` before a late login older than it.
- ``delay``: activities held back before they are produced, some inside the producer-delay
  budget, some beyond it (those land after the revocation and must be audited as such).
- ``duplicate``: events of any type delivered twice (same ``event_id``).
- ``partitioner``: a user's activities produced with librdkafka's default partitioner (CRC32)
  instead of murmur2, so they land on another partition than the user's login.

Each changes only how events are stamped and published; the ground truth follows from the
oracle's rules (oracle.py), never from the fault.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sessionwarden.errors import ConfigError

FAULTS = ("skew", "reorder", "delay", "duplicate", "partitioner")
REORDER_KINDS = (
    "logout_before_login",
    "removal_before_login",
    "stale_grant",
    "revocation_before_login",
)
# Per user, the chance that a fault mode touches it (when the mode is on).
USER_SHARE = {"skew": 0.3, "reorder": 0.2, "delay": 0.3, "duplicate": 0.2, "partitioner": 0.15}
DELAYED_SHARE = 0.4  # of a delayed user's activities
DUPLICATED_SHARE = 0.3  # of a duplicating user's events
SKEW_MARGIN_S = 0.5  # positive skew stays this far inside the tolerance
# Kinds whose outcome depends on auth_time arithmetic: kept on a true clock.
UNSKEWED_KINDS = frozenset({"step_up", "high_risk_ok"})


def parse_faults(text: str) -> frozenset[str]:
    """``skew,delay`` or ``all`` (or empty: none) -> the set of fault modes."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names == {"all"}:
        return frozenset(FAULTS)
    unknown = sorted(names - set(FAULTS))
    if unknown:
        raise ConfigError(f"unknown fault mode(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    return frozenset(names)


@dataclass(frozen=True)
class UserFaults:
    """How one user's producers misbehave."""

    skew: float = 0.0  # seconds the producer clock is ahead (+) or behind (-)
    delay: bool = False  # some activities held back before producing
    late_activity: bool = False  # one activity produced beyond the budget, after its deadline
    duplicate: bool = False  # some events delivered twice
    foreign: bool = False  # activities produced with the CRC32 partitioner
    reorder: str = ""  # a reorder scenario replacing the user's kind

    @property
    def any(self) -> bool:
        return self != UserFaults()


def coverage_names(modes: frozenset[str]) -> list[str]:
    """The fault names (as a plan counts them) that a run with ``modes`` must exercise at least
    once: both skew directions, every reorder scenario, each other mode."""
    names: list[str] = []
    for mode in FAULTS:
        if mode not in modes:
            continue
        if mode == "skew":
            names += ["skew_ahead", "skew_behind"]
        elif mode == "reorder":
            names += [f"reorder:{k}" for k in REORDER_KINDS]
        else:
            names.append(mode)
    return names


def draw(
    rng: random.Random,
    modes: frozenset[str],
    kind: str,
    idle: float,
    tolerance: float,
    force: str = "",
) -> UserFaults:
    """The faults of one user (a fixed number of draws per mode: reproducible per seed).
    ``force`` (a name of `coverage_names`) makes that fault certain for this user."""
    rolls = {mode: rng.random() for mode in FAULTS}
    hit = {mode: mode in modes and rolls[mode] < USER_SHARE[mode] for mode in FAULTS}
    skew = 0.0
    magnitude = rng.random()
    direction = rng.random()
    reorder = rng.choice(REORDER_KINDS)
    forced = force.split(":")[0].replace("skew_ahead", "skew").replace("skew_behind", "skew")
    if forced in hit:
        hit[forced] = True
        if forced == "skew":
            hit["reorder"] = False
            direction = 0.0 if force == "skew_ahead" else 1.0
        elif forced == "reorder":
            reorder = force.split(":")[1]
    # A reordered user keeps a true clock: its scenario is about append order alone.
    if hit["skew"] and kind not in UNSKEWED_KINDS and not hit["reorder"]:
        if direction < 0.5:
            skew = 0.5 + magnitude * max(0.0, tolerance - SKEW_MARGIN_S - 0.5)
        else:
            skew = -(0.1 + 0.2 * magnitude) * idle
    return UserFaults(
        skew=round(skew, 3),
        delay=hit["delay"],
        late_activity=hit["delay"] and kind in ("idle", "grant"),
        duplicate=hit["duplicate"],
        foreign=hit["partitioner"],
        reorder=reorder if hit["reorder"] else "",
    )


def delay_for(rng: random.Random, budget: float) -> float:
    """How long an activity is held: inside the budget when one is set (and the coin says so),
    otherwise beyond it."""
    if budget >= 0.5 and rng.random() < 0.6:
        return round(rng.uniform(0.1, budget - 0.2), 3)
    return round(budget + rng.uniform(1.6, 3.0), 3)
