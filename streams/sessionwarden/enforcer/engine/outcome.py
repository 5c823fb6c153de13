"""What applying one auth event did: the value ``PartitionEnforcer.apply`` returns.

The shell acts on it (a dead-lettered event goes to the dead-letter topic with its reason) and
the metrics record it (``sessionwarden_enforcer_events_total{outcome}``); neither has to guess
from the core's counters. The outputs an event made are in the partition's open batch
(``state.out`` and the changelog), committed with the transaction that read the event.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    """``kind`` is the metric's outcome label. A dead-lettered event carries the dead letter's
    ``reason`` (a bounded code) and ``detail`` (text for whoever reads the dead letter)."""

    kind: str
    reason: str | None = None
    detail: str | None = None


APPLIED = Outcome("applied")
"""It changed the partition's state (a session started, touched or ended, roles changed)."""
DUPLICATE = Outcome("duplicate")
"""Seen before: its event id, a replayed login, an output already made for it."""
LATE = Outcome("late")
"""Made while its session was valid, read after the session ended: no anomaly."""
REFUSED = Outcome("refused")
"""Changes nothing: another user's session, an ended session used, a login after its logout
(each leaves an audit event)."""


def dead_lettered(reason: str, detail: str) -> Outcome:
    """Not applied: the event goes to the dead-letter topic with ``reason`` and ``detail``."""
    return Outcome("dead_lettered", reason, detail)
