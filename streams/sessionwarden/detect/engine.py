"""One audit record in, alerts and state writes out: the detectors wired to the policy.

Pure code over :class:`DetectState` (dicts: in the app, one user's document). Every decision
runs on the record's own time (``occurred_at``); the wall clock only stamps ``emitted_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sessionwarden.contracts.outputs import (
    AlertKind,
    AuditEvent,
    EndedSessionUsed,
    ForeignSessionEvent,
    HighRiskOperation,
    RoleChanged,
    SessionEnded,
    SessionStarted,
)
from sessionwarden.detect.alerts import Cooldown, build_alert
from sessionwarden.detect.detectors import (
    EXPIRY_REASONS,
    ConcurrentSessions,
    Escalation,
    Expiry,
    Grant,
    Operation,
    PrivilegeLadder,
    RepeatedExpirations,
    Trigger,
    ended_session_used,
    foreign_session_event,
)
from sessionwarden.detect.expiry import Retention
from sessionwarden.detect.tables import (
    EXPIRATIONS,
    GRANTS,
    DetectState,
    Tables,
    UserKey,
    Write,
)
from sessionwarden.policy import Policy


@dataclass(slots=True)
class Outcome:
    """What one record produced: alerts to send first, then writes to apply."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    suppressed: list[AlertKind] = field(default_factory=list)


class Engine:
    """The four detectors with the policy's thresholds, and the cooldown between alerts."""

    def __init__(self, policy: Policy) -> None:
        a = policy.anomaly
        self.expirations = RepeatedExpirations(
            a.repeated_expirations.count, a.repeated_expirations.window
        )
        self.escalation = Escalation(
            a.escalation.min_levels, a.escalation.window, a.escalation.high_risk_within
        )
        self.concurrent = ConcurrentSessions(a.concurrent_sessions.max)
        self.cooldown = Cooldown(a.cooldown)
        self.ladder = PrivilegeLadder(role.privilege for role in policy.roles.values())
        self._state = DetectState({}, self.expirations.window, self.escalation.lookback)

    def state(self, tables: Tables) -> DetectState:
        return self._state.over(tables)

    @property
    def windows(self) -> dict[str, float]:
        """How much event time each mark table's reads look back."""
        return {EXPIRATIONS: self.expirations.window, GRANTS: self.escalation.lookback}

    @property
    def retention(self) -> Retention:
        """How long each part of a user's state can change a judgment (expiry.py)."""
        return Retention(self.windows, self.cooldown.period)

    def process(self, record: AuditEvent, state: DetectState, emitted_at: float) -> Outcome:
        out = Outcome()
        at = record.occurred_at.timestamp()
        user: UserKey = (record.tenant, record.user_id)
        trigger: Trigger | None = None
        if isinstance(record, SessionStarted):
            trigger = self._started(record, at, state, out)
        elif isinstance(record, SessionEnded):
            trigger = self._ended(record, at, state, out)
        elif isinstance(record, RoleChanged):
            trigger = self._role_changed(record, at, state, out)
        elif isinstance(record, HighRiskOperation):
            op = Operation(
                at,
                str(record.event_id),
                record.session_id,
                record.action,
                record.resource,
                record.allowed,
            )
            trigger = self.escalation.high_risk(state.grants.recent(state.tables, user, at), op)
        elif isinstance(record, EndedSessionUsed):
            trigger = ended_session_used(
                at,
                str(record.event_id),
                record.session_id,
                record.action,
                record.resource,
                record.ended_reason if record.session_state == "ended" else None,
            )
        elif isinstance(record, ForeignSessionEvent):
            trigger = foreign_session_event(
                at,
                str(record.event_id),
                record.session_id,
                record.event_type,
                record.owner_user_id,
                record.session_state,
            )
        if trigger is not None:
            self._alert(trigger, user, at, emitted_at, state, out)
        return out

    def _started(
        self, e: SessionStarted, at: float, state: DetectState, out: Outcome
    ) -> Trigger | None:
        user = (e.tenant, e.user_id)
        live = state.sessions(user)
        deadline = e.absolute_deadline.timestamp()
        changed, trigger = self.concurrent.started(
            live, e.session_id, deadline, at, str(e.event_id)
        )
        if changed is not None:
            out.writes.append(state.put_sessions(user, changed))
        return trigger

    def _ended(
        self, e: SessionEnded, at: float, state: DetectState, out: Outcome
    ) -> Trigger | None:
        user = (e.tenant, e.user_id)
        changed = self.concurrent.ended(state.sessions(user), e.session_id, at)
        if changed is not None:
            out.writes.append(state.put_sessions(user, changed))
        if e.reason not in EXPIRY_REASONS:
            return None
        mark = Expiry(at, str(e.event_id), e.session_id, e.reason)
        history = state.expirations.recent(state.tables, user, at)
        remember, trigger = self.expirations.observe(history, mark)
        if remember:
            out.writes.append(state.expirations.append(state.tables, user, mark))
        return trigger

    def _role_changed(
        self, e: RoleChanged, at: float, state: DetectState, out: Outcome
    ) -> Trigger | None:
        removed = set(e.roles_removed)
        granted = tuple(dict.fromkeys(r for r in e.roles_granted if r not in removed))
        grant = Grant(
            at=at,
            event_id=str(e.event_id),
            rise=self.ladder.rise(e.privilege_before, e.privilege_after),
            privilege_before=e.privilege_before,
            privilege_after=e.privilege_after,
            roles=granted,
            sensitive=tuple(e.sensitive_granted),
            self_grant=bool(granted) and e.actor == e.user_id,
        )
        user = (e.tenant, e.user_id)
        history = state.grants.recent(state.tables, user, at)
        remember, trigger = self.escalation.role_changed(history, grant)
        if remember is not None:
            out.writes.append(state.grants.append(state.tables, user, remember))
        return trigger

    def _alert(
        self,
        trigger: Trigger,
        user: UserKey,
        at: float,
        emitted_at: float,
        state: DetectState,
        out: Outcome,
    ) -> None:
        decision = self.cooldown.decide(state.cooldown(user, trigger.kind), trigger, at)
        if decision.record is None:
            return  # a replayed trigger: its alert was handled the first time
        out.writes.append(state.put_cooldown(user, trigger.kind, decision.record))
        if decision.emit:
            tenant, user_id = user
            out.alerts.append(
                build_alert(trigger, user_id, tenant, decision.suppressed, emitted_at)
            )
        else:
            out.suppressed.append(trigger.kind)
