"""The ground-truth oracle: how each session of one simulated user must end (pure).

It restates the enforcement rules independently of the enforcer, on the time model the
enforcer follows:

- events are read in broker order; ``r`` is when an event is appended (the plan's publish
  time), ``t`` its producer stamp (``occurred_at``) and ``e = min(t, r)`` its event time;
- every deadline is computed from event times: idle = last activity ``e`` + idle timeout,
  absolute = login ``e`` + absolute timeout;
- a deadline ``d`` fires once broker time passes ``d + budget`` (the producer-delay budget):
  an event appended later than that is read after the revocation. An activity read so with
  ``e <= d`` is expected as an ``activity_after_revocation`` audit record;
- a logout of a session not yet known leaves a marker: the later login creates nothing;
- a role change applies to a role only if it is newer (by ``e``) than that role's last change;
  a login carrying a role removed at a later ``e`` is revoked as the removal would have done;
- a login that leaves its user more live sessions than ``max_sessions_per_user`` ends the
  oldest (by login ``e``, then session id): at its deadline if that is not after the login's
  ``e``, else as ``session_limit`` at that ``e``;
- an identity signal ends, at its ``e``, the session it names (``session_revoked``; an unknown
  or ended one: nothing) or every live session of the user that began by then
  (``user_revoked``; a login older than the user's latest one, read after it, ends at it), as
  ``signal``; a ``risk_change`` sets the sessions that began by its ``e``
  (all, or the one named) to the tighter of their timeouts and those of the new risk profile,
  and one already past a tighter deadline ends at that ``e`` with the deadline's reason; a
  session whose own deadline came first ends at it, as everywhere;
- a repeated ``event_id`` changes nothing.

An event read too close to the moment a deadline fires could go either way on a real broker
(publish latency, the enforcer's own delay); the oracle flags such a user as ambiguous and the
plan builder draws that user again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sessionwarden.policy import Policy

# An event appended within this window before a deadline's firing time might be appended after
# it (publish latency); within this window after it, it might still be read before the enforcer
# fires (the enforcer's probe and batch delay).
BEFORE_FIRE_S = 0.1
AFTER_FIRE_S = 1.5
DEADLINE_REASONS = frozenset({"idle_timeout", "absolute_timeout"})
NEVER_LIVE = "never_live"
USER_WIDE = frozenset({"role_change", "user_revoked"})
"""Event kinds that concern every live session of the user."""


def stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@dataclass
class _Session:
    sid: str
    idle: float
    absolute_deadline: float
    last: float
    auth_time: float
    roles: set[str]
    end: tuple[str, float] | None = None
    login: float = 0.0
    user_type: str = ""

    def deadline(self) -> tuple[str, float]:
        idle_at = self.last + self.idle
        if self.absolute_deadline <= idle_at:
            return "absolute_timeout", self.absolute_deadline
        return "idle_timeout", idle_at


@dataclass
class Verdict:
    """The oracle's answer for one user."""

    ends: dict[str, tuple[str, float]] = field(default_factory=dict)  # sid -> (reason, at)
    ended_session_used: list[str] = field(default_factory=list)
    after_revocation: list[str] = field(default_factory=list)
    ambiguous: str = ""  # why the user's outcome is not determined, if it is not


class _Replay:
    def __init__(self, policy: Policy, budget: float, slack: float, window: float) -> None:
        self.policy, self.budget, self.slack, self.window = policy, budget, slack, window
        self.ahead = False  # some event's time came from its append time (clock ahead)
        self.sessions: dict[str, _Session] = {}
        self.logged_out: dict[str, float] = {}  # session id -> logout e, login not yet read
        self.role_changed: dict[str, tuple[float, bool]] = {}  # role -> (e, removed)
        self.revoked_at: float | None = None  # the latest user_revoked's e
        self.seen: set[str] = set()
        self.verdict = Verdict()

    def live(self) -> list[_Session]:
        return [s for s in self.sessions.values() if s.end is None]

    def fire_passed(self, r: float, e: float, affected: list[_Session]) -> None:
        """End every session whose firing time broker time `r` has passed; flag ambiguity for
        the sessions the event at `r` would change."""
        for s in self.live():
            reason, d = s.deadline()
            fire = d + self.budget
            if r > fire + AFTER_FIRE_S:
                s.end = (reason, d)
            elif r >= fire - BEFORE_FIRE_S and s in affected and e <= d:
                self.verdict.ambiguous = f"{s.sid}: event read at {r:.3f} near firing {fire:.3f}"

    def apply(self, doc: dict[str, Any], r: float) -> None:
        if doc["event_id"] in self.seen:
            return
        self.seen.add(doc["event_id"])
        t = stamp(doc["occurred_at"])
        e = min(t, r + self.slack)
        self.ahead = self.ahead or t > r
        kind = doc["type"]
        sess = self.sessions.get(doc.get("session_id", ""))
        user_wide = kind in USER_WIDE or (kind == "risk_change" and not doc.get("session_id"))
        affected = self.live() if user_wide else [sess] if sess else []
        self.fire_passed(r, e, affected)
        if self.ahead:  # append times vary per event: keep event times clear of deadlines
            for s in affected:
                if s.end is None and abs(e - s.deadline()[1]) < self.window:
                    self.verdict.ambiguous = f"{s.sid}: event time {e:.3f} near its deadline"
        if kind == "login":
            self._login(doc, e)
        elif kind == "activity":
            self._activity(doc, sess, e)
        elif kind == "logout":
            self._logout(doc, sess, e)
        elif kind == "role_change":
            self._role_change(doc, e)
        elif kind in ("session_revoked", "user_revoked"):
            self._signal(affected, e, kind == "session_revoked")
            if kind == "user_revoked":
                self.revoked_at = e if self.revoked_at is None else max(self.revoked_at, e)
        elif kind == "risk_change":
            self._risk_change(doc["risk_profile"], affected, e)

    def _login(self, doc: dict[str, Any], e: float) -> None:
        sid = doc["session_id"]
        if sid in self.sessions:
            return
        tm = self.policy.timeouts_for(doc["user_type"], doc["risk_profile"])
        roles = set(doc["roles"])
        s = _Session(sid, tm.idle, e + tm.absolute, e, stamp(doc["auth_time"]), roles, login=e)
        s.user_type = doc["user_type"]
        self.sessions[sid] = s
        if sid in self.logged_out:
            s.end = (NEVER_LIVE, self.logged_out[sid])
            return
        changes = [self.role_changed[r] for r in roles if r in self.role_changed]
        later = [at for at, removed in changes if removed and at > e]
        if later:
            reason, d = s.deadline()
            at = min(later)
            s.end = (reason, d) if d <= at else ("permissions_revoked", at)
        revoked = self.revoked_at
        if s.end is None and revoked is not None and e <= revoked:
            reason, d = s.deadline()
            s.end = (reason, d) if d <= revoked else ("signal", revoked)
        live = self.live()
        while len(live) > self.policy.max_sessions_per_user:
            oldest = min(live, key=lambda o: (o.login, o.sid))
            reason, d = oldest.deadline()
            oldest.end = (reason, d) if d <= e else ("session_limit", e)
            live.remove(oldest)

    def _activity(self, doc: dict[str, Any], s: _Session | None, e: float) -> None:
        if s is None:
            return  # unknown session: never generated by the plans
        if s.end is None:
            reason, d = s.deadline()
            if d > e:
                s.last = max(s.last, e)
                self._high_risk(s, doc["action"], e)
                return
            s.end = (reason, d)  # it had ended when the request was made: quietly if at d
            if e > d:
                self.verdict.ended_session_used.append(s.sid)
            return
        reason, at = s.end
        if e > at:
            self.verdict.ended_session_used.append(s.sid)
        elif reason in DEADLINE_REASONS:
            self.verdict.after_revocation.append(s.sid)

    def _high_risk(self, s: _Session, action: str, e: float) -> None:
        rule = self.policy.high_risk_rule(action)
        if rule is None:
            return
        if e - s.auth_time > rule.max_auth_age:
            s.end = ("step_up_required", e)
        elif rule.idle is not None:
            s.idle = min(s.idle, rule.idle)

    def _logout(self, doc: dict[str, Any], s: _Session | None, e: float) -> None:
        if s is None:
            self.logged_out.setdefault(doc["session_id"], e)
        elif s.end is None:
            reason, d = s.deadline()
            s.end = (reason, d) if d <= e else ("logout", e)

    def _role_change(self, doc: dict[str, Any], e: float) -> None:
        def newer(role: str) -> bool:
            return self.role_changed.get(role, (float("-inf"), False))[0] < e

        removed = {r for r in doc["roles_removed"] if newer(r)}
        granted = {r for r in doc["roles_granted"] if newer(r)} - removed
        for role in removed | granted:
            self.role_changed[role] = (e, role in removed)
        for s in self.live():
            reason, d = s.deadline()
            if d <= e:
                s.end = (reason, d)
            elif s.roles & removed:
                s.end = ("permissions_revoked", e)
            else:
                s.roles |= granted

    def _signal(self, targets: list[_Session], e: float, named: bool) -> None:
        for s in targets:
            if s.end is not None:
                continue
            reason, d = s.deadline()
            if d <= e:
                s.end = (reason, d)
            elif named or s.login <= e:
                s.end = ("signal", max(e, s.login))

    def _risk_change(self, profile: str, targets: list[_Session], e: float) -> None:
        for s in targets:
            if s.end is not None or s.login > e:
                continue
            reason, d = s.deadline()
            if d <= e:
                s.end = (reason, d)
                continue
            tm = self.policy.timeouts_for(s.user_type, profile)
            s.idle = min(s.idle, tm.idle)
            s.absolute_deadline = min(s.absolute_deadline, s.login + tm.absolute)
            reason, d = s.deadline()
            if d <= e:
                s.end = (reason, e)

    def finish(self) -> Verdict:
        for s in self.sessions.values():
            if s.end is None:
                s.end = s.deadline()
            self.verdict.ends[s.sid] = s.end
        return self.verdict


def judge(
    policy: Policy,
    events: list[tuple[float, dict[str, Any]]],
    budget: float,
    slack: float = 0.0,
    window: float = 0.0,
) -> Verdict:
    """Replay one user's events `(append time, doc)` in append order. An event time taken
    from the append time (a clock-ahead producer) is taken `slack` later: the broker appends
    a little after the plan publishes. With such event times, one within `window` of a
    deadline makes the outcome ambiguous (each event's real append delay differs)."""
    replay = _Replay(policy, budget, slack, window)
    for r, doc in sorted(events, key=lambda row: row[0]):
        replay.apply(doc, r)
    return replay.finish()
