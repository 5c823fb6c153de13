"""Alerts from triggers: deterministic ids, the per-(user, kind) cooldown, the wire record.

Pure code: times are event times in seconds, passed in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sessionwarden.contracts.outputs import AlertKind, AlertSeverity
from sessionwarden.detect.detectors import SEVERITY_RANK, Trigger
from sessionwarden.policy.durations import millis

# Fixed namespace: the same trigger yields the same alert id in every process, after every
# restart or rebalance, so a re-emitted alert is a duplicate subscribers can drop.
NAMESPACE = uuid.UUID("0b6f4a8e-52c1-4c55-9a57-3c1d2e7f9b20")
RECENT_TRIGGERS = 32
"""Trigger event ids remembered per (user, kind), so a replayed trigger is not counted twice."""
MAX_SUMMARY = 512


def alert_id(kind: str, user_id: str, window_start: float, trigger_event_id: str) -> UUID:
    """uuid5 of the kind, the user, the start of the window the evidence spans (ms) and the
    audit event that fired it. The tenant is not named: the enforcer's audit event ids are
    derived from it already, so the same trigger in two tenants never shares an id."""
    name = f"alert|{kind}|{user_id}|{millis(window_start)}|{trigger_event_id}"
    return uuid.uuid5(NAMESPACE, name)


@dataclass(frozen=True, slots=True)
class CooldownRecord:
    """The last emitted alert of one (user, kind) and what was withheld since."""

    last_at: float
    severity: AlertSeverity
    suppressed: int = 0
    recent: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    emit: bool
    suppressed: int
    """For an emitted alert: how many were withheld before it."""
    record: CooldownRecord | None
    """The record to store; None when nothing changes (a replayed trigger)."""


class Cooldown:
    """Repeats of a (user, kind) within ``period`` of the last emitted alert are withheld and
    counted; the next emitted alert carries the count. A repeat of higher severity than the
    last emitted one is not withheld: an escalating situation must not wait out the cooldown."""

    def __init__(self, period: float) -> None:
        self.period = period

    def decide(self, record: CooldownRecord | None, trigger: Trigger, at: float) -> Decision:
        if record is not None and trigger.event_id in record.recent:
            return Decision(emit=False, suppressed=0, record=None)
        recent = (*(record.recent if record else ()), trigger.event_id)[-RECENT_TRIGGERS:]
        if (
            record is None
            or at >= record.last_at + self.period
            or SEVERITY_RANK[trigger.severity] > SEVERITY_RANK[record.severity]
        ):
            withheld = record.suppressed if record else 0
            return Decision(True, withheld, CooldownRecord(at, trigger.severity, 0, recent))
        held = CooldownRecord(record.last_at, record.severity, record.suppressed + 1, recent)
        return Decision(emit=False, suppressed=0, record=held)


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def build_alert(
    trigger: Trigger, user_id: str, tenant: str, suppressed: int, emitted_at: float
) -> dict[str, Any]:
    """The alert record as a dict for the codec (sessionwarden.contracts.outputs.Alert)."""
    kind: AlertKind = trigger.kind
    return {
        "type": "alert",
        "schema_version": 1,
        "alert_id": alert_id(kind, user_id, trigger.first_seen, trigger.event_id),
        "user_id": user_id,
        "tenant": tenant,
        "kind": kind,
        "severity": trigger.severity,
        "first_seen": _ts(trigger.first_seen),
        "last_seen": _ts(trigger.last_seen),
        "evidence": {
            "event_ids": list(trigger.event_ids),
            "session_ids": list(trigger.session_ids),
            "roles": list(trigger.roles),
            "counts": dict(trigger.counts),
        },
        "summary": _bounded(trigger.summary),
        "suppressed": suppressed,
        "emitted_at": _ts(emitted_at),
    }


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 3] + "..."
