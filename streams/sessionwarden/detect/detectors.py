"""The anomaly detectors: pure decisions over one user's recent audit history.

Privilege escalation lives in escalation.py, the Trigger they all answer with in trigger.py.
No Kafka, faust or clock in here. Every call gets the event time of the record it judges (the
audit record's ``occurred_at``, in seconds) and the history its caller kept, and answers what
to remember and what fired. Windows are inclusive: marks ``W`` seconds apart are within ``W``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sessionwarden.contracts.outputs import AlertKind, AlertSeverity
from sessionwarden.detect.escalation import Escalation, Grant, Operation, PrivilegeLadder
from sessionwarden.detect.trigger import MAX_EVIDENCE, SEVERITY_RANK, Trigger
from sessionwarden.policy import format_duration

__all__ = [
    "EXPIRY_REASONS",
    "MAX_EVIDENCE",
    "MAX_LIVE_SESSIONS",
    "SEVERITY_RANK",
    "ConcurrentSessions",
    "Escalation",
    "Expiry",
    "Grant",
    "LiveSessions",
    "Operation",
    "PrivilegeLadder",
    "RepeatedExpirations",
    "Trigger",
    "ended_session_used",
    "foreign_session_event",
]

EXPIRY_REASONS = frozenset({"idle_timeout", "absolute_timeout"})
MAX_LIVE_SESSIONS = 1024
"""Live sessions remembered per user; beyond it the earliest deadlines are forgotten."""


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
