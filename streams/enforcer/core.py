"""The enforcement decision for one input partition: pure, no Kafka, time passed in.

``PartitionEnforcer`` applies auth events and fires deadlines inside a batch of its
``PartitionState`` (partition.py), which the Kafka shell maps onto one transaction.

Deadlines live in a heap with lazy re-arm: activity only rewrites ``last_activity``; when an
entry comes due the session's real deadline is recomputed and, if it moved, re-armed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from schemas.inputs import Activity, AuthEvent, Login, Logout, RoleChange
from streams.enforcer import records
from streams.enforcer.partition import PartitionState
from streams.enforcer.state import (
    RECENT_CHANGES,
    SESSION_PREFIX,
    USER_PREFIX,
    Ended,
    Session,
    User,
)
from streams.policy import HighRiskRule, Policy

FORGET_MARGIN = 3600.0  # keep an ended session's marker this long past its absolute deadline
RULE_CACHE_CAPACITY = 10_000
_UNCACHED: Any = object()


class PartitionEnforcer(PartitionState):
    """The decisions: auth events in, sessions ended, revocations and audit events out."""

    def __init__(self, policy: Policy, partition: int = 0) -> None:
        super().__init__(policy, partition)
        self._rules: dict[str, HighRiskRule | None] = {}

    # -- inputs ---------------------------------------------------------------------------

    def apply(self, event: AuthEvent, now: float, received: float | None = None) -> str | None:
        """Apply one validated event. Returns a reason to dead-letter it, or None."""
        self.now = now
        t = event.occurred_at.timestamp()
        if t > now + self.policy.clock_skew_tolerance:
            self._count("future")
            return (
                f"occurred_at is {t - now:.1f}s ahead of the enforcer clock "
                f"(tolerance {self.policy.clock_skew_tolerance:g}s)"
            )
        eid = event.event_id
        if eid in self._seen:
            self._count("duplicate")
            return None
        self._remember(eid)
        if t > self.event_watermark:
            self.event_watermark = t
        if isinstance(event, Activity):
            self._activity(event, t)
        elif isinstance(event, Login):
            self._login(event, t)
        elif isinstance(event, Logout):
            self._logout(event, t)
        else:
            self._role_change(event, t)
        return None

    def fire_due(self, until: float, now: float, limit: int | None = None) -> int:
        """End every live session whose deadline is at or before ``until`` (at most ``limit``
        of them, earliest first: the rest stay due for the next batch)."""
        self.now = now
        fired = 0
        heap = self._deadlines
        while heap and heap[0][0] <= until and (limit is None or fired < limit):
            _, sid = heapq.heappop(heap)
            sess = self.sessions.get(sid)
            if sess.__class__ is not Session:
                continue
            assert isinstance(sess, Session)
            deadline, reason = sess.deadline()
            if deadline > until:
                heapq.heappush(heap, (deadline, sid))
                continue
            self._end(sess, reason, deadline)
            fired += 1
        return fired

    # -- event handlers -------------------------------------------------------------------

    def _login(self, e: Login, t: float) -> None:
        sid = e.session_id
        if sid in self.sessions:  # a replayed login never resets or resurrects a session
            self._count("login_ignored")
            return
        tm = self.policy.timeouts_for(e.user_type, e.risk_profile)
        user = self.users.get(e.user_id)
        roles = self._interned(tuple(e.roles))
        sess = Session(
            sid,
            user.user_id if user is not None else e.user_id,
            self._interned(e.tenant),
            self._interned(e.user_type),
            self._interned(e.risk_profile),
            t,
            t,
            e.auth_time.timestamp(),
            tm.idle,
            t + tm.absolute,
            roles,
            self._interned(tuple(e.permissions)),
        )
        self._touch(SESSION_PREFIX + sid, None)
        self.sessions[sid] = sess
        heapq.heappush(self._deadlines, (sess.deadline()[0], sid))
        if user is None:
            user = User(sess.user_id, sess.tenant, frozenset())
            self._touch(USER_PREFIX + user.user_id, None)
            self.users[user.user_id] = user
        else:
            self._touch(USER_PREFIX + user.user_id, user)
        # The user's known roles: everything seen granted (logins may carry subsets), minus
        # what role changes removed since.
        user.roles = self._interned(user.roles | frozenset(roles))
        user.sessions.append(sid)
        self._keep_user(user, sess.absolute_deadline)
        privilege = self.policy.privilege_of(roles)
        self._emit(
            "audit",
            sess.user_id,
            records.session_started(sess, e.auth_method, privilege, e.source_ip),
        )
        self._count("login")

    def _activity(self, e: Activity, t: float) -> None:
        sid = e.session_id
        sess = self.sessions.get(sid)
        if sess.__class__ is Session:
            assert isinstance(sess, Session)
            deadline, reason = sess.deadline()
            if deadline <= t:  # it had already ended when this request was made
                self._end(sess, reason, deadline)
                sess = self.sessions[sid]
            else:
                self._touch(SESSION_PREFIX + sid, sess)
                if t > sess.last_activity:
                    sess.last_activity = t
                rule = self._rules.get(e.action, _UNCACHED)
                if rule is _UNCACHED:
                    rule = self._rule_for(e.action)
                if rule is not None:
                    self._high_risk(e, sess, t, rule.max_auth_age, rule.idle)
                return
        if isinstance(sess, Ended) and t <= sess.ended_at:
            self._count("late_ignored")  # made while the session was still valid: no anomaly
            return
        ended = sess if isinstance(sess, Ended) else None
        self._emit(
            "audit",
            e.user_id,
            records.ended_session_used(
                e.event_id, e.user_id, e.tenant, t, sid, e.action, e.resource, ended
            ),
        )
        self._count("ended_session_used")

    def _high_risk(
        self, e: Activity, sess: Session, t: float, max_age: float, idle: float | None
    ) -> None:
        allowed = t - sess.auth_time <= max_age
        self._emit(
            "audit",
            sess.user_id,
            records.high_risk_operation(
                e.event_id, sess, t, e.action, e.resource, max_age, allowed
            ),
        )
        if not allowed:
            self._end(sess, "step_up_required", t, e.event_id)
        elif idle is not None and idle < sess.idle_timeout:
            sess.idle_timeout = idle  # sticky: the session stays on the shorter idle window
            heapq.heappush(self._deadlines, (sess.deadline()[0], sess.session_id))

    def _logout(self, e: Logout, t: float) -> None:
        sess = self.sessions.get(e.session_id)
        if not isinstance(sess, Session):
            self._count("logout_ignored")
            return
        deadline, reason = sess.deadline()
        if deadline <= t:
            self._end(sess, reason, deadline)
        else:
            self._end(sess, "logout", t, e.event_id)

    def _role_change(self, e: RoleChange, t: float) -> None:
        change_id = str(e.event_id)
        user = self.users.get(e.user_id)
        if user is not None and change_id in user.recent_changes:
            self._count("duplicate")
            return
        self._touch(USER_PREFIX + e.user_id, user)
        if user is None:
            user = User(e.user_id, self._interned(e.tenant), frozenset())
            self.users[e.user_id] = user
        removed = set(e.roles_removed)
        granted = [r for r in dict.fromkeys(e.roles_granted) if r not in removed]
        before = user.roles
        after = (before - removed) | frozenset(granted)
        live = len(user.sessions)
        for sid in list(user.sessions):
            self._apply_role_change(self.sessions[sid], e, t, removed, granted)
        user.roles = self._interned(after)
        user.recent_changes = (*user.recent_changes, change_id)[-RECENT_CHANGES:]
        self._keep_user(user, t)
        new_grants = [r for r in granted if r not in before]
        self._emit(
            "audit",
            e.user_id,
            records.role_changed(
                e.event_id,
                e.user_id,
                e.tenant,
                t,
                list(e.roles_granted),
                list(e.roles_removed),
                e.actor,
                self.policy.privilege_of(before),
                self.policy.privilege_of(after),
                self.policy.sensitive_roles(new_grants),
                live,
            ),
        )
        self._count("role_change")

    def _apply_role_change(
        self, sess: Session | Ended, e: RoleChange, t: float, removed: set[str], granted: list[str]
    ) -> None:
        assert isinstance(sess, Session)
        deadline, reason = sess.deadline()
        if deadline <= t:
            self._end(sess, reason, deadline)
            return
        held = [r for r in sess.roles if r in removed]
        if held:
            self._end(sess, "permissions_revoked", t, e.event_id, held)
            return
        fresh = [r for r in granted if r not in sess.roles]
        if fresh:
            self._touch(SESSION_PREFIX + sess.session_id, sess)
            sess.roles = self._interned((*sess.roles, *fresh))
            self._emit(
                "revocations",
                sess.session_id,
                records.revalidation(sess, fresh, t, self.now, self.policy.version, e.event_id),
            )
            self._count("revalidation")

    # -- helpers --------------------------------------------------------------------------

    def _end(
        self,
        sess: Session,
        reason: str,
        at: float,
        cause: UUID | None = None,
        roles_removed: Iterable[str] = (),
    ) -> None:
        sid = sess.session_id
        self._touch(SESSION_PREFIX + sid, sess)
        forget_at = max(at, sess.absolute_deadline) + FORGET_MARGIN
        ended = Ended(sid, sess.user_id, sess.tenant, reason, at, forget_at)
        self.sessions[sid] = ended
        heapq.heappush(self._forget, (forget_at, SESSION_PREFIX + sid))
        user = self.users.get(sess.user_id)
        if user is not None:
            self._touch(USER_PREFIX + user.user_id, user)
            if sid in user.sessions:
                user.sessions.remove(sid)
            self._keep_user(user, at)
        self._emit(
            "revocations",
            sid,
            records.revocation(
                sess, reason, at, self.now, self.policy.version, cause, roles_removed
            ),
        )
        self._emit("audit", sess.user_id, records.session_ended(sess, ended))
        self._count(reason)

    def _keep_user(self, user: User, at: float) -> None:
        forget_at = at + self.policy.max_absolute
        if forget_at > user.forget_at:
            user.forget_at = forget_at
            heapq.heappush(self._forget, (forget_at, USER_PREFIX + user.user_id))

    def _rule_for(self, action: str) -> HighRiskRule | None:
        rule = self.policy.high_risk_rule(action)
        if len(self._rules) < RULE_CACHE_CAPACITY:  # hostile input cannot grow it unbounded
            self._rules[action] = rule
        return rule
