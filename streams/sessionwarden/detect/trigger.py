"""What a detector answers when it fires: a Trigger, and the bounds on its evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sessionwarden.contracts.outputs import AlertKind, AlertSeverity

SEVERITY_RANK: Mapping[AlertSeverity, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
MAX_EVIDENCE = 256
"""Event ids (and session ids) an alert carries at most."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """A detector fired: everything an alert needs except cooldown bookkeeping."""

    kind: AlertKind
    severity: AlertSeverity
    event_id: str
    """The audit event that fired it; with kind and user it identifies the alert."""
    first_seen: float
    last_seen: float
    summary: str
    event_ids: tuple[str, ...] = ()
    session_ids: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)
