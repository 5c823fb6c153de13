"""The enforcement decision for one input partition: pure, no Kafka, time passed in.

``PartitionEnforcer`` applies auth events and fires deadlines; what they change lives in the
``PartitionState`` it holds (``enforcer.state``, partition.py), changed in batches the Kafka
shell maps onto one transaction each (``state.begin()``, ``changelog()``, ``commit()``).

Time: every event is judged on its effective time e = min(occurred_at, received), where
``received`` is the broker append time of its record: a producer clock ahead of the broker can
neither extend a deadline past receive time nor make a live session look expired.

Deadlines are indexed with lazy re-arm (deadlines.py): activity only rewrites
``last_activity``; when an entry comes due the session's real deadline is recomputed and, if it
moved, re-armed.

Identity signals from outside (``session_revoked``, ``user_revoked``, ``risk_change``) follow
the same rules: a session whose own deadline came first ends at it, with its own reason.

Past the ~400-line guide on purpose: the handlers of the event kinds and of a deadline share
the ownership, ordering and dedup rules above, and read best side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from sessionwarden.contracts.base import MAX_ROLES
from sessionwarden.contracts.inputs import (
    Activity,
    AuthEvent,
    Login,
    Logout,
    RiskChange,
    RoleChange,
    SessionRevoked,
    UserRevoked,
)
from sessionwarden.enforcer.engine import records
from sessionwarden.enforcer.engine.outcome import (
    APPLIED,
    DUPLICATE,
    LATE,
    REFUSED,
    Outcome,
    dead_lettered,
)
from sessionwarden.enforcer.engine.partition import PartitionState
from sessionwarden.enforcer.engine.roles import apply_role_times, removed_after
from sessionwarden.enforcer.engine.sessions import (
    RECENT_CHANGES,
    SESSION,
    USER,
    Ended,
    Key,
    RoleTimes,
    Session,
    User,
    remember,
    revocation_key,
)
from sessionwarden.policy import Policy

FORGET_MARGIN = 3600.0  # keep an ended session's marker this long past its absolute deadline
DEADLINE_REASONS = frozenset({"idle_timeout", "absolute_timeout"})

SessionEvent = Login | Activity | Logout


class PartitionEnforcer:
    """The decisions: auth events in, sessions ended, revocations and audit events out.
    ``apply`` returns what became of its event (outcome.py); ``stats`` counts what happened
    by name."""

    def __init__(self, policy: Policy, partition: int = 0) -> None:
        self.policy = policy
        self.state = PartitionState(policy, partition)
        self.now = 0.0
        self.stats: dict[str, int] = {}
        self._high_risk_rule = policy.high_risk_rule  # cached in the policy

    # -- inputs ---------------------------------------------------------------------------

    def apply(self, event: AuthEvent, now: float, received: float | None = None) -> Outcome:
        """Apply one validated event read at ``now`` whose record was appended at ``received``
        (None: at ``now``). Returns what became of it; a dead-lettered outcome carries the
        reason."""
        self.now = now
        r = now if received is None else received
        t = event.occurred_at.timestamp()
        if t > r + self.policy.clock_skew_tolerance:
            self._count("future")
            return dead_lettered(
                "future_timestamp",
                f"occurred_at is {t - r:.1f}s ahead of the time it was received "
                f"(tolerance {self.policy.clock_skew_tolerance:g}s)",
            )
        state = self.state
        if not state.first_seen(event.tenant, event.event_id.int):
            self._count("duplicate")
            return DUPLICATE
        e = t if t < r else r
        if e > state.event_watermark:
            state.event_watermark = e
        if r > state.received_watermark:
            state.received_watermark = r
        if isinstance(event, Activity):
            return self._activity(event, e, r)
        if isinstance(event, Login):
            return self._login(event, e, t)
        if isinstance(event, Logout):
            return self._logout(event, e)
        if isinstance(event, RoleChange):
            return self._role_change(event, e)
        if isinstance(event, RiskChange):
            return self._risk_change(event, e)
        return self._signal(event, e)

    def fire_due(self, until: float, now: float, limit: int | None = None) -> int:
        """End every live session whose deadline is at or before ``until`` (at most ``limit``
        of them, earliest first: the rest stay due for the next batch)."""
        self.now = now
        fired = 0
        while limit is None or fired < limit:
            sess = self.state.pop_due(until)
            if sess is None:
                break
            deadline, reason = sess.deadline()
            self._end(sess, reason, deadline)
            fired += 1
        return fired

    # -- event handlers -------------------------------------------------------------------

    def _login(self, ev: Login, e: float, t: float) -> Outcome:
        key = (ev.tenant, ev.session_id)
        existing = self.state.sessions.get(key)
        if existing is not None:
            if existing.user_id != ev.user_id:
                return self._foreign(ev, existing, e)
            if isinstance(existing, Ended) and not existing.lived:
                return self._login_after_logout(ev, existing, e)
            self._count("login_ignored")  # a replayed login never resets or resurrects a session
            return DUPLICATE
        state = self.state
        claimed = ev.auth_time.timestamp()
        sess = self._new_session(ev, e, t, claimed)
        key = sess.key  # one tuple for the session, its dict entry and its deadline entries
        state.touch_session(key, None)
        state.sessions[key] = sess
        state.arm(sess.deadline()[0], key)
        late = self._join_user(sess, e)
        privilege = self.policy.privilege_of(sess.roles)
        state.emit(
            "audit",
            sess.user_id,
            records.session_started(sess, ev.auth_method, privilege, ev.source_ip, claimed),
        )
        self._count("login")
        if late:  # a removal newer than this login was read before it
            self._end_for_roles(sess, min(at for at, _ in late.values()), None, list(late))
        self._end_if_user_revoked(sess)
        self._limit_sessions(sess, e, ev.event_id)
        return APPLIED

    def _new_session(self, ev: Login, e: float, t: float, claimed: float) -> Session:
        intern = self.state.intern
        tm = self.policy.timeouts_for(ev.user_type, ev.risk_profile)
        # authentication after the login it started (or ahead of receive time) is not trusted
        auth_time = min(claimed, e) if claimed <= t else None
        if auth_time == e:
            auth_time = e  # the same float object as login_at: 24 bytes less per session
        return Session(
            (intern(ev.tenant), ev.session_id),
            ev.user_id,
            intern(ev.user_type),
            intern(ev.risk_profile),
            e,
            e,
            auth_time,
            tm.idle,
            e + tm.absolute,
            intern(tuple(ev.roles)),
            intern(tuple(ev.permissions)),
        )

    def _join_user(self, sess: Session, e: float) -> RoleTimes:
        """Add a new live session to its user; returns the roles of the session that role
        changes read before the login removed after it (role -> (time, granted))."""
        state = self.state
        ukey = (sess.key[0], sess.user_id)
        if ukey not in state.users:  # its first session: the user is that session for now
            state.touch_user(ukey, None)
            state.users[ukey] = sess
            return {}
        user = state.user(ukey)
        assert user is not None
        state.touch_user(ukey, user)
        roles = sess.roles
        late = removed_after(user.role_times, roles, e)
        # The user's known roles: every catalogued role seen granted (logins may carry
        # subsets), minus what role changes removed since. Only catalogued roles have a
        # privilege or sensitivity; others would only grow the user's record.
        known = self.policy.known_roles(roles)
        if not known <= user.roles:
            user.roles = state.intern(user.roles | (known - frozenset(late)))
        state.add_user_session(user, sess)
        self._keep_user(user, sess.absolute_deadline)
        return late

    def _limit_sessions(self, sess: Session, e: float, cause: UUID) -> None:
        """Hold the user of a new login to ``max_sessions_per_user`` live sessions: end its
        oldest (by login time, then session id: the same choice in any read order and after a
        restore; the user keeps them in that order) at the login's time, or at its deadline if
        that passed already. Bounds what one record about the user (a role change) must
        change and emit."""
        state = self.state
        ukey = (sess.key[0], sess.user_id)
        entry = state.users.get(ukey)
        if entry.__class__ is not User:  # no user, or the user is its only session
            return
        assert isinstance(entry, User)
        sids = entry.sessions
        cap = self.policy.max_sessions_per_user
        while len(sids) > cap:
            oldest = state.sessions[(ukey[0], sids[0])]
            assert isinstance(oldest, Session)
            deadline, reason = oldest.deadline()
            if deadline <= e:
                self._end(oldest, reason, deadline)
            else:
                self._end(oldest, "session_limit", e, cause)

    def _activity(self, ev: Activity, e: float, r: float) -> Outcome:
        key = (ev.tenant, ev.session_id)
        sess = self.state.sessions.get(key)
        if sess.__class__ is Session:
            assert isinstance(sess, Session)
            if sess.user_id != ev.user_id:
                return self._foreign(ev, sess, e)
            deadline, reason = sess.deadline()
            if deadline > e:
                self.state.touch_session(key, sess)
                if e > sess.last_activity:
                    sess.last_activity = e
                rule = self._high_risk_rule(ev.action)
                if rule is not None:
                    return self._high_risk(ev, sess, e, rule.max_auth_age, rule.idle)
                return APPLIED
            self._end(sess, reason, deadline)  # it had already ended when the request was made
            if e <= deadline:  # made at the very deadline: too late to extend, not a misuse
                self._count("late_ignored")
                return LATE
            sess = self.state.sessions[key]
        if sess is None:
            self.state.emit("audit", ev.user_id, records.ended_session_used(ev, e, None))
            self._count("ended_session_used")
            return REFUSED
        assert isinstance(sess, Ended)
        return self._on_ended(ev, sess, e, r)

    def _on_ended(self, ev: Activity, ended: Ended, e: float, r: float) -> Outcome:
        if ended.user_id != ev.user_id:
            return self._foreign(ev, ended, e)
        if e <= ended.ended_at and ended.reason not in DEADLINE_REASONS:
            self._count("late_ignored")  # made while the session was still valid: no anomaly
            return LATE
        if not self._first_output(ended, ev.event_id):
            return DUPLICATE
        if e <= ended.ended_at:  # produced in time, appended after its deadline fired
            doc = records.activity_after_revocation(ev, e, r, ended)
            self.state.emit("audit", ev.user_id, doc)
            self._count("activity_after_revocation")
            return LATE
        self.state.emit("audit", ev.user_id, records.ended_session_used(ev, e, ended))
        self._count("ended_session_used")
        return REFUSED

    def _first_output(self, target: Session | Ended, event_id: UUID) -> bool:
        """Whether ``target`` has not yet produced an output for this event (durable: the ids
        are in its changelog record). Records the id."""
        eid = str(event_id)
        if eid in target.recent:
            self._count("duplicate")
            return False
        self.state.touch_session(target.key, target)
        target.recent = remember(target.recent, eid)
        return True

    def _high_risk(
        self, ev: Activity, sess: Session, e: float, max_age: float, idle: float | None
    ) -> Outcome:
        if not self._first_output(sess, ev.event_id):
            return DUPLICATE
        auth_time = sess.auth_time
        allowed = auth_time is not None and e - auth_time <= max_age
        doc = records.high_risk_operation(ev, sess, e, max_age, allowed)
        self.state.emit("audit", sess.user_id, doc)
        if not allowed:
            self._end(sess, "step_up_required", e, ev.event_id)
        elif idle is not None and idle < sess.idle_timeout:
            sess.idle_timeout = idle  # sticky: the session stays on the shorter idle window
            self.state.arm(sess.deadline()[0], sess.key)
        return APPLIED

    def _logout(self, ev: Logout, e: float) -> Outcome:
        key = (ev.tenant, ev.session_id)
        sess = self.state.sessions.get(key)
        if sess is None:
            # unknown so far: its login may still be read; it must not go live then
            forget_at = e + self.policy.max_absolute + FORGET_MARGIN
            marker = Ended(key, ev.user_id, "logout", e, forget_at, lived=False)
            self.state.touch_session(key, None)
            self.state.sessions[key] = marker
            self.state.forget_later(forget_at, SESSION, key)
            self._count("logout_before_login")
            return APPLIED
        if sess.user_id != ev.user_id:
            return self._foreign(ev, sess, e)
        if not isinstance(sess, Session):
            self._count("logout_ignored")  # the session had ended: nothing to undo
            return APPLIED
        deadline, reason = sess.deadline()
        if deadline <= e:
            self._end(sess, reason, deadline)
        else:
            self._end(sess, "logout", max(e, sess.login_at), ev.event_id)
        return APPLIED

    def _login_after_logout(self, ev: Login, marker: Ended, e: float) -> Outcome:
        if not self._first_output(marker, ev.event_id):
            return DUPLICATE
        self.state.emit("audit", ev.user_id, records.login_after_logout(ev, e, marker))
        self._count("login_after_logout")
        return REFUSED

    def _foreign(self, ev: SessionEvent, target: Session | Ended, e: float) -> Outcome:
        """An event naming a session of another user of the tenant: it changes nothing, not
        even the owner's record (so its duplicates are caught by the in-memory filter only)."""
        self.state.emit("audit", ev.user_id, records.foreign_session_event(ev, e, target))
        self._count("foreign_session_event")
        return REFUSED

    def _role_change(self, ev: RoleChange, e: float) -> Outcome:
        change_id = str(ev.event_id)
        ukey = (ev.tenant, ev.user_id)
        user = self.state.user(ukey)
        if user is not None and change_id in user.recent_changes:
            self._count("duplicate")
            return DUPLICATE
        self.state.touch_user(ukey, user)
        if user is None:
            user = User((self.state.intern(ev.tenant), ev.user_id), frozenset())
            self.state.users[ukey] = user
        # only changes newer than each role's last change apply (event time decides)
        user.role_times, removed, granted = apply_role_times(
            user.role_times, ev.roles_granted, ev.roles_removed, e, self.policy.max_absolute
        )
        before = user.roles
        after = self.policy.known_roles((before - removed).union(granted))
        live = len(user.sessions)
        for sid in list(user.sessions):
            self._apply_role_change(self.state.sessions[(ukey[0], sid)], ev, e, removed, granted)
        user.roles = self.state.intern(after)
        user.recent_changes = (*user.recent_changes, change_id)[-RECENT_CHANGES:]
        self._keep_user(user, e)
        new_grants = [r for r in granted if r not in before]
        self.state.emit(
            "audit",
            ev.user_id,
            records.role_changed(
                ev,
                e,
                self.policy.privilege_of(before),
                self.policy.privilege_of(after),
                self.policy.sensitive_roles(new_grants),
                live,
            ),
        )
        self._count("role_change")
        return APPLIED

    def _apply_role_change(
        self,
        sess: Session | Ended,
        ev: RoleChange,
        e: float,
        removed: frozenset[str],
        granted: list[str],
    ) -> None:
        assert isinstance(sess, Session)
        held = [r for r in sess.roles if r in removed]
        if held and sess.login_at <= e:  # a login newer than the removal got its roles afresh
            self._end_for_roles(sess, e, ev.event_id, held)
            return
        deadline, reason = sess.deadline()
        if deadline <= e:
            self._end(sess, reason, deadline)
            return
        # A session holds at most the roles its records may carry (MAX_ROLES): a strict
        # decoder refuses a longer list, and its revocation would not be enforced downstream.
        # Grants past that do not reach it (it goes on without them).
        fresh = [r for r in granted if r not in sess.roles][: MAX_ROLES - len(sess.roles)]
        if fresh:
            self.state.touch_session(sess.key, sess)
            sess.roles = self.state.intern((*sess.roles, *fresh))
            self.state.emit(
                "revocations",
                revocation_key(*sess.key),
                records.revalidation(sess, fresh, e, self.now, self.policy.version, ev.event_id),
            )
            self._count("revalidation")

    def _signal(self, ev: SessionRevoked | UserRevoked, e: float) -> Outcome:
        """End the named session, or every session of the user that began by ``e``; an
        unknown, ended or foreign session is left alone (counted ``signal_ignored``). Read
        again, it finds them ended: nothing changes."""
        if isinstance(ev, SessionRevoked):
            targets = self._own_live(ev.tenant, ev.user_id, ev.session_id)
            if not targets:
                self._count("signal_ignored")
        else:
            user = self.state.user((ev.tenant, ev.user_id))
            if user is not None and str(ev.event_id) in user.recent_changes:
                self._count("duplicate")
                return DUPLICATE
            targets = self.state.live_sessions_of((ev.tenant, ev.user_id))
        for sess in targets:
            deadline, reason = sess.deadline()
            if deadline <= e:
                self._end(sess, reason, deadline)
            elif sess.login_at <= e or isinstance(ev, SessionRevoked):
                at = max(e, sess.login_at)
                self._end(sess, "signal", at, ev.event_id, signal=(ev.signal, ev.source))
        if isinstance(ev, UserRevoked):
            self._remember_user_revoked(ev, e)
        return APPLIED

    def _remember_user_revoked(self, ev: UserRevoked, e: float) -> None:
        """Keep the user's latest revocation, so that a login older than it and read later
        ends at once (as a removed role does), and its id, so that a copy changes nothing."""
        state = self.state
        ukey = (ev.tenant, ev.user_id)
        user = state.user(ukey)
        state.touch_user(ukey, user)
        if user is None:
            user = User((state.intern(ev.tenant), ev.user_id), frozenset())
            state.users[ukey] = user
        eid = str(ev.event_id)
        if user.revoked is None or e > user.revoked[0]:
            user.revoked = (e, ev.signal, ev.source, eid)
        user.recent_changes = (*user.recent_changes, eid)[-RECENT_CHANGES:]
        self._keep_user(user, e)

    def _end_if_user_revoked(self, sess: Session) -> None:
        """End a new login that began by its user's latest ``user_revoked`` (read before it):
        at that revocation, or at its own deadline if that came first."""
        entry = self.state.users.get((sess.key[0], sess.user_id))
        if entry.__class__ is not User or self.state.sessions.get(sess.key) is not sess:
            return
        assert isinstance(entry, User)
        revoked = entry.revoked
        if revoked is None or sess.login_at > revoked[0]:
            return
        at, signal, source, eid = revoked
        deadline, reason = sess.deadline()
        if deadline <= at:
            self._end(sess, reason, deadline)
        else:
            self._end(sess, "signal", at, UUID(eid), signal=(signal, source))

    def _risk_change(self, ev: RiskChange, e: float) -> Outcome:
        """Tighten the user's sessions (or the one named) that began by ``e`` to the policy's
        timeouts for the new risk profile, where they are tighter: deadlines only move earlier,
        so the order such changes are read in does not matter, and one read again changes
        nothing. A session past a tighter deadline ends at ``e``."""
        if ev.session_id is None:
            targets = self.state.live_sessions_of((ev.tenant, ev.user_id))
        else:
            targets = self._own_live(ev.tenant, ev.user_id, ev.session_id)
        for sess in targets:
            if sess.login_at <= e:
                self._tighten(sess, ev, e)
        return APPLIED

    def _tighten(self, sess: Session, ev: RiskChange, e: float) -> None:
        deadline, reason = sess.deadline()
        if deadline <= e:
            self._end(sess, reason, deadline)  # it had ended before the change
            return
        tm = self.policy.timeouts_for(sess.user_type, ev.risk_profile)
        idle = min(sess.idle_timeout, tm.idle)
        absolute = min(sess.absolute_deadline, sess.login_at + tm.absolute)
        if idle == sess.idle_timeout and absolute == sess.absolute_deadline:
            self._count("risk_unchanged")
            return
        before = (sess.risk_profile, sess.idle_timeout, sess.absolute_deadline)
        self.state.touch_session(sess.key, sess)
        sess.risk_profile = self.state.intern(ev.risk_profile)
        sess.idle_timeout = idle
        sess.absolute_deadline = absolute
        deadline, reason = sess.deadline()
        ended = deadline <= e
        doc = records.session_risk_changed(ev, sess, e, before, ended)
        self.state.emit("audit", sess.user_id, doc)
        self._count("risk_tightened")
        if ended:
            self._end(sess, reason, e, ev.event_id)
        else:
            self.state.arm(deadline, sess.key)

    # -- helpers --------------------------------------------------------------------------

    def _own_live(self, tenant: str, user_id: str, session_id: str) -> list[Session]:
        """The named session if it is live and ``user_id``'s, else nothing."""
        sess = self.state.sessions.get((tenant, session_id))
        if isinstance(sess, Session) and sess.user_id == user_id:
            return [sess]
        return []

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _end_for_roles(
        self, sess: Session, at: float, cause: UUID | None, roles: Iterable[str]
    ) -> None:
        """End a session holding removed roles at ``at``, or at its deadline if that came first."""
        deadline, reason = sess.deadline()
        if deadline <= at:
            self._end(sess, reason, deadline)
        else:
            self._end(sess, "permissions_revoked", at, cause, roles)

    def _end(
        self,
        sess: Session,
        reason: str,
        at: float,
        cause: UUID | None = None,
        roles_removed: Iterable[str] = (),
        signal: tuple[str, str | None] | None = None,
    ) -> None:
        key: Key = sess.key
        self.state.touch_session(key, sess)
        forget_at = max(at, sess.absolute_deadline) + FORGET_MARGIN
        ended = Ended(key, sess.user_id, reason, at, forget_at, sess.recent)
        self.state.sessions[key] = ended
        self.state.forget_later(forget_at, SESSION, key)
        ukey = (key[0], sess.user_id)
        user = self.state.user(ukey)
        if user is not None:
            self.state.touch_user(ukey, user)
            if key[1] in user.sessions:
                user.sessions.remove(key[1])
            self._keep_user(user, at, last_ended=True)
        self.state.emit(
            "revocations",
            revocation_key(*key),
            records.revocation(
                sess, reason, at, self.now, self.policy.version, cause, roles_removed
            ),
        )
        self.state.emit("audit", sess.user_id, records.session_ended(sess, ended, signal))
        self._count(reason)

    def _keep_user(self, user: User, at: float, last_ended: bool = False) -> None:
        """Keep a user until ``at`` + the longest absolute timeout. Its forget entry is pushed
        only once it has no live session (a live session's user is never forgotten): a
        million live users' entries would cost a hundred bytes each."""
        forget_at = at + self.policy.max_absolute
        moved = forget_at > user.forget_at
        if moved:
            user.forget_at = forget_at
        if (moved or last_ended) and not user.sessions:
            self.state.forget_later(user.forget_at, USER, user.key)

    # -- operator commands (engine/commands.py) -------------------------------------------

    def end_session(self, sess: Session, reason: str, at: float, cause: UUID | None = None) -> None:
        """End a live session at ``at`` on an outside decision (an operator command): its
        revocation, audit record and state change go into the open batch."""
        self._end(sess, reason, at, cause)
