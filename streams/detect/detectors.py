"""The anomaly detectors: pure decisions over one user's recent audit history.

No Kafka, faust or clock in here. Every call gets the event time of the record it judges (the
audit record's ``occurred_at``, in seconds) and the history its caller kept, and answers what
to remember and what fired. Windows are inclusive: marks ``W`` seconds apart are within ``W``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from schemas.outputs import AlertKind, AlertSeverity
from streams.policy import format_duration

SEVERITY_RANK: Mapping[AlertSeverity, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
EXPIRY_REASONS = frozenset({"idle_timeout", "absolute_timeout"})
MAX_LIVE_SESSIONS = 1024
"""Live sessions remembered per user; beyond it the earliest deadlines are forgotten."""
MAX_EVIDENCE = 256


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


# --- repeated expirations ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expiry:
    """A session of the user ended by its idle or absolute timeout."""

    at: float
    event_id: str
    session_id: str
    reason: str


class RepeatedExpirations:
    """``count`` or more expirations of one user within any ``window`` seconds."""

    kind: AlertKind = "repeated_expirations"

    def __init__(self, count: int, window: float) -> None:
        self.count = count
        self.window = window

    def observe(self, history: Sequence[Expiry], new: Expiry) -> tuple[bool, Trigger | None]:
        """Whether to remember ``new`` (False for a replayed event) and what fired.

        Looks at every window of ``window`` seconds that contains ``new``, so an expiry that
        arrives out of order still completes the burst it belongs to.
        """
        marks = [m for m in history if abs(m.at - new.at) <= self.window]
        if any(m.event_id == new.event_id for m in marks):
            return False, None
        marks.append(new)
        marks.sort(key=lambda m: (m.at, m.event_id))
        burst = _densest_window(marks, new, self.window)
        if len(burst) < self.count:
            return True, None
        return True, self._trigger(burst, new)

    def _trigger(self, burst: Sequence[Expiry], new: Expiry) -> Trigger:
        idle = sum(1 for m in burst if m.reason == "idle_timeout")
        n = len(burst)
        return Trigger(
            kind=self.kind,
            severity="high" if n >= 2 * self.count else "medium",
            event_id=new.event_id,
            first_seen=burst[0].at,
            last_seen=burst[-1].at,
            summary=(
                f"{n} sessions timed out within {format_duration(self.window)}"
                f" ({idle} idle, {n - idle} absolute); threshold {self.count}"
            ),
            event_ids=tuple(m.event_id for m in burst[-MAX_EVIDENCE:]),
            session_ids=tuple(dict.fromkeys(m.session_id for m in burst[-MAX_EVIDENCE:])),
            counts={
                "expirations": n,
                "idle_timeout": idle,
                "absolute_timeout": n - idle,
                "threshold": self.count,
                "window_s": round(self.window),
            },
        )


def _densest_window(marks: Sequence[Expiry], new: Expiry, window: float) -> Sequence[Expiry]:
    """The largest run of ``marks`` (sorted) spanning at most ``window`` and containing ``new``."""
    times = [m.at for m in marks]
    best: Sequence[Expiry] = ()
    for start, t in enumerate(times):
        if t > new.at:
            break
        if t < new.at - window:
            continue
        end = bisect.bisect_right(times, t + window)
        if end - start > len(best):
            best = marks[start:end]
    return best


# --- privilege escalation ------------------------------------------------------------------


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


# --- concurrent sessions -------------------------------------------------------------------

LiveSessions = Mapping[str, tuple[float, float]]
"""session_id -> (started_at, absolute deadline) of the user's live sessions."""


class ConcurrentSessions:
    """More than ``maximum`` live sessions for one user.

    A session counts from its session_started until its session_ended, and never past its
    absolute deadline (no session outlives it, so a lost end record cannot inflate the count).
    """

    kind: AlertKind = "concurrent_sessions"

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum

    def started(
        self, live: LiveSessions, session_id: str, deadline: float, at: float, event_id: str
    ) -> tuple[dict[str, tuple[float, float]] | None, Trigger | None]:
        """The new live set (None when unchanged) and what fired."""
        current = _prune(live, at)
        if session_id in current or deadline <= at:
            return (current if len(current) != len(live) else None), None
        current[session_id] = (at, deadline)
        if len(current) > MAX_LIVE_SESSIONS:
            for sid in sorted(current, key=lambda s: current[s][1])[:-MAX_LIVE_SESSIONS]:
                del current[sid]
        n = len(current)
        if n <= self.maximum:
            return current, None
        ordered = sorted(current, key=lambda s: current[s])
        return current, Trigger(
            kind=self.kind,
            severity="high" if n >= 2 * self.maximum else "medium",
            event_id=event_id,
            first_seen=min(started for started, _ in current.values()),
            last_seen=at,
            summary=f"{n} live sessions at once; at most {self.maximum} expected",
            event_ids=(event_id,),
            session_ids=tuple(ordered[-MAX_EVIDENCE:]),
            counts={"live_sessions": n, "max": self.maximum},
        )

    def ended(
        self, live: LiveSessions, session_id: str, at: float
    ) -> dict[str, tuple[float, float]] | None:
        """The new live set, or None when unchanged."""
        current = _prune(live, at)
        current.pop(session_id, None)
        return current if len(current) != len(live) else None


def _prune(live: LiveSessions, at: float) -> dict[str, tuple[float, float]]:
    return {sid: span for sid, span in live.items() if span[1] > at}


# --- use of an ended or unknown session ----------------------------------------------------


def ended_session_used(
    at: float,
    event_id: str,
    session_id: str,
    action: str,
    resource: str,
    ended_reason: str | None,
) -> Trigger:
    """Every request on an ended or never-started session is an alert (a possible replay).

    Use after a revocation or logout, or of a session never seen, is high severity; use after
    a timeout is medium (often a client that kept an expired token).
    """
    severity: AlertSeverity = "high"
    if ended_reason is None:
        what = "an unknown session"
    else:
        what = f"a session ended by {ended_reason}"
        if ended_reason in EXPIRY_REASONS:
            severity = "medium"
    return Trigger(
        kind="ended_session_used",
        severity=severity,
        event_id=event_id,
        first_seen=at,
        last_seen=at,
        summary=f"{action} on {resource or '(no resource)'} with {what}",
        event_ids=(event_id,),
        session_ids=(session_id,),
        counts={"unknown_session": int(ended_reason is None)},
    )


# --- an event on another user's session ----------------------------------------------------


def foreign_session_event(
    at: float,
    event_id: str,
    session_id: str,
    event_type: str,
    owner: str,
    session_state: str,
) -> Trigger:
    """A login, request or logout naming a session of another user of the tenant: the session
    id reached someone it was not issued to (stolen, leaked or forged). Always high."""
    return Trigger(
        kind="foreign_session_event",
        severity="high",
        event_id=event_id,
        first_seen=at,
        last_seen=at,
        summary=f"{event_type} with a session owned by {owner} ({session_state})",
        event_ids=(event_id,),
        session_ids=(session_id,),
        counts={"live_session": int(session_state == "live")},
    )
