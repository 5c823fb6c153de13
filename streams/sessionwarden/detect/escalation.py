"""The privilege-escalation detector: pure decisions over one user's recent grants."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sessionwarden.contracts.outputs import AlertKind, AlertSeverity
from sessionwarden.detect.trigger import MAX_EVIDENCE, Trigger
from sessionwarden.policy import format_duration


class PrivilegeLadder:
    """Ranks privilege levels by the distinct levels of the policy's role catalog.

    With the shipped catalog (viewer 10, user 20, support 40, billing/developer 50, auditor 60,
    admin 90, superadmin 100) the ranks are 0 (no known role), 1 (10), 2 (20), 3 (40), ...
    A level between two catalog levels ranks with the lower one.
    """

    def __init__(self, levels: Iterable[int]) -> None:
        self.levels = sorted({0, *levels})

    def rank(self, privilege: int) -> int:
        return max(0, bisect.bisect_right(self.levels, privilege) - 1)

    def rise(self, before: int, after: int) -> int:
        """Ranks climbed from ``before`` to ``after``; 0 when privilege did not go up."""
        return max(0, self.rank(after) - self.rank(before))


@dataclass(frozen=True, slots=True)
class Grant:
    """A role change that raised privilege, granted a sensitive role or was self-granted."""

    at: float
    event_id: str
    rise: int
    privilege_before: int
    privilege_after: int
    roles: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()
    self_grant: bool = False
    flagged: bool = False
    """It fired an escalation on its own (set by the detector)."""

    @property
    def escalating(self) -> bool:
        return self.rise > 0 or bool(self.sensitive) or self.self_grant


@dataclass(frozen=True, slots=True)
class Operation:
    """A high-risk operation (allowed or refused for stale authentication)."""

    at: float
    event_id: str
    session_id: str
    action: str
    resource: str
    allowed: bool


class Escalation:
    """Sudden privilege escalation.

    Fires on a role change when the ranks climbed within ``window`` (this change and the ones
    before it: stepwise escalation) reach ``min_levels``, when it grants a sensitive role, or
    when the actor granted roles to itself; and on a high-risk operation that follows any
    escalating change by at most ``high_risk_within``.
    """

    kind: AlertKind = "privilege_escalation"

    def __init__(self, min_levels: int, window: float, high_risk_within: float) -> None:
        self.min_levels = min_levels
        self.window = window
        self.high_risk_within = high_risk_within

    @property
    def lookback(self) -> float:
        """How much history either decision needs."""
        return max(self.window, self.high_risk_within)

    def role_changed(
        self, history: Sequence[Grant], new: Grant
    ) -> tuple[Grant | None, Trigger | None]:
        """The grant to remember (None: nothing escalating, or a replay) and what fired."""
        if not new.escalating or any(g.event_id == new.event_id for g in history):
            return None, None
        steps = [g for g in history if new.at - self.window <= g.at <= new.at and g.rise > 0]
        steps.append(new)
        steps.sort(key=lambda g: (g.at, g.event_id))
        levels = sum(g.rise for g in steps)
        climbed = new.rise > 0 and levels >= self.min_levels
        if not (climbed or new.sensitive or new.self_grant):
            return new, None
        if new.self_grant and (climbed or new.sensitive):
            severity: AlertSeverity = "critical"
        elif new.self_grant or new.sensitive:
            severity = "high"
        else:
            severity = "medium"
        chain = steps if climbed else [new]
        trigger = Trigger(
            kind=self.kind,
            severity=severity,
            event_id=new.event_id,
            first_seen=chain[0].at,
            last_seen=new.at,
            summary=self._summary(chain, levels if climbed else new.rise, new),
            event_ids=tuple(g.event_id for g in chain[-MAX_EVIDENCE:]),
            roles=_roles(chain),
            counts={
                "levels": levels if climbed else new.rise,
                "min_levels": self.min_levels,
                "changes": len(chain),
                "privilege_before": chain[0].privilege_before,
                "privilege_after": new.privilege_after,
                "sensitive_roles": len(new.sensitive),
                "self_grant": int(new.self_grant),
            },
        )
        return replace(new, flagged=True), trigger

    def _summary(self, chain: Sequence[Grant], levels: int, new: Grant) -> str:
        parts = [
            f"privilege {chain[0].privilege_before} -> {new.privilege_after}"
            f" (+{levels} level{'s' if levels != 1 else ''}"
            + (
                f" in {len(chain)} changes within {format_duration(self.window)})"
                if len(chain) > 1
                else ")"
            )
        ]
        if new.sensitive:
            parts.append("sensitive role granted: " + ", ".join(new.sensitive))
        if new.self_grant:
            parts.append("granted by the user itself")
        return "; ".join(parts)

    def high_risk(self, history: Sequence[Grant], op: Operation) -> Trigger | None:
        """A high-risk operation shortly after an escalating change."""
        recent = sorted(
            (g for g in history if op.at - self.high_risk_within <= g.at <= op.at),
            key=lambda g: (g.at, g.event_id),
        )
        if not recent:
            return None
        latest = recent[-1]
        after = op.at - latest.at
        outcome = "allowed" if op.allowed else "refused (step-up required)"
        return Trigger(
            kind=self.kind,
            severity="critical" if any(g.flagged for g in recent) else "high",
            event_id=op.event_id,
            first_seen=recent[0].at,
            last_seen=op.at,
            summary=(
                f"high-risk operation {op.action} on {op.resource or '(no resource)'}"
                f" {format_duration(after)} after a privilege grant"
                f" ({', '.join(_roles(recent)) or 'no new role'}); {outcome}"
            ),
            event_ids=(*(g.event_id for g in recent[-(MAX_EVIDENCE - 1) :]), op.event_id),
            session_ids=(op.session_id,),
            roles=_roles(recent),
            counts={
                "levels": sum(g.rise for g in recent),
                "changes": len(recent),
                "privilege_after": latest.privilege_after,
                "seconds_after_grant": round(after),
                "allowed": int(op.allowed),
            },
        )


def _roles(grants: Iterable[Grant]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(role for g in grants for role in g.roles))[:64]
