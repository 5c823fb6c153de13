"""Seeded, reproducible traffic plans and their ground truth (pure: no Kafka, no clock).

A plan is a list of events, each with the time it happens (``occurred_at``) and the time it is
published (usually the same; later for deliberately late events). The ground truth is computed
from the plan by an oracle that restates the enforcement rules independently of the enforcer:
for each session, how and when it must end under the policy.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sessionwarden.audit.faults import (
    DELAYED_SHARE,
    DUPLICATED_SHARE,
    UNSKEWED_KINDS,
    UserFaults,
    coverage_names,
    delay_for,
    draw,
)
from sessionwarden.audit.oracle import judge
from sessionwarden.policy import Policy
from sessionwarden.testing.events import iso, login_doc

USER_TYPES = ("customer", "employee", "admin", "service")
RISKS = ("low", "medium", "high")
KINDS: dict[str, float] = {  # scenario kind -> weight
    "idle": 3,
    "idle_just_under": 2,
    "idle_just_over": 2,
    "absolute": 1,
    "logout": 3,
    "role_removed": 1,
    "grant": 1,
    "step_up": 1,
    "high_risk_ok": 1,
    "signal_session": 1,
    "signal_user": 1,
    "risk_tightened": 1,
}
DUPLICATE_RATE = 0.03
TIE_GAP = 0.01  # seconds: no planned event lands this close to a session's absolute deadline
# The broker appends an event at most this long after the plan publishes it (a
# clock-ahead producer's event time is its append time, so its deadline may move this much);
# a record forwarded from a wrong partition is appended up to FORWARD_SLACK_S later still.
APPEND_SLACK_S = 0.5  # as long as simulate does not warn that it fell behind
FORWARD_SLACK_S = 0.7
MAX_DRAWS = 6  # fault draws per user before it is planned without faults

TENANT = "sim"  # every simulated event's tenant; the ground truth names it
SOURCE = "ssf:sim"  # the source the simulated identity signals name


@dataclass
class Planned:
    publish_at: float
    doc: dict[str, Any] | None  # None: a poison record (raw bytes in ``raw``)
    raw: bytes = b""
    key: str = ""
    foreign: bool = False  # produced with the CRC32 partitioner instead of murmur2


@dataclass
class Truth:
    """How a session must end: reason and time (``at_max``: the latest the time may be, when
    it hangs on a broker append time)."""

    session_id: str
    user_id: str
    kind: str
    reason: str = ""
    at: float = 0.0
    at_max: float = 0.0


@dataclass
class Plan:
    run_id: str
    events: list[Planned] = field(default_factory=list)
    truth: dict[str, Truth] = field(default_factory=dict)
    ended_session_used: list[str] = field(default_factory=list)
    activity_after_revocation: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    budget: float = 0.0
    duplicates: int = 0
    late: int = 0
    poison: int = 0

    @property
    def last_deadline(self) -> float:
        return max((max(t.at, t.at_max) for t in self.truth.values()), default=0.0)


def _ms(t: float) -> float:
    """Plan times are whole milliseconds: what the oracle sees is what goes on the wire."""
    return round(t, 3)


class _Builder:
    """Emits one user's events at a time (``begin_user``), with that user's faults applied."""

    def __init__(self, policy: Policy, rng: random.Random, run_id: str, budget: float) -> None:
        self.policy = policy
        self.rng = rng
        self.run_id = run_id
        self.budget = budget
        self.plan = Plan(run_id, budget=budget)
        self.counter = 0
        self.faults = UserFaults()
        self.user_events: list[Planned] = []
        self.logins: dict[str, tuple[float, float]] = {}  # sid -> (login time, absolute)
        self.kinds: dict[str, str] = {}
        self.user_late = 0

    def begin_user(self, faults: UserFaults) -> None:
        self.faults, self.user_events, self.kinds, self.user_late = faults, [], {}, 0

    def session_kind(self, sid: str, kind: str) -> None:
        self.kinds[sid] = kind

    def event_id(self) -> str:
        """The next event's id: the same run makes the same ids."""
        self.counter += 1
        return str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"sessionwarden-sim/{self.run_id}/{self.counter}")
        )

    def doc(self, kind: str, t: float, user: str, **fields: Any) -> dict[str, Any]:
        base = {
            "type": kind,
            "event_id": self.event_id(),
            "occurred_at": iso(_ms(t + self.faults.skew)),  # the producer's clock
            "user_id": user,
            "tenant": TENANT,
        }
        base.update(fields)
        return base

    def emit(self, doc: dict[str, Any], at: float, publish_at: float | None = None) -> None:
        """Publish `doc` made at true time `at` (at `publish_at` if given), faults applied."""
        f, rng = self.faults, self.rng
        activity = doc["type"] == "activity"
        publish = _ms(at if publish_at is None else publish_at)
        if activity and f.delay and publish_at is None and rng.random() < DELAYED_SHARE:
            publish = _ms(at + delay_for(rng, self.budget))
        self.user_events.append(Planned(publish, doc, foreign=activity and f.foreign))
        self.user_late += publish > at
        if (f.duplicate and rng.random() < DUPLICATED_SHARE) or (
            activity and rng.random() < DUPLICATE_RATE
        ):
            again = _ms(publish + rng.uniform(0.05, 1.5))  # same event id: a redelivery
            self.user_events.append(Planned(again, doc, foreign=activity and f.foreign))

    def login(
        self,
        sid: str,
        user: str,
        t: float,
        user_type: str,
        risk: str,
        roles: list[str],
        auth_age: float = 0.0,
        publish_at: float | None = None,
    ) -> None:
        t = _ms(t)
        skew = self.faults.skew  # the producer's clock
        doc = login_doc(sid, user, _ms(t + skew), roles, risk, user_type, tenant=TENANT,
                        event_id=self.event_id(), permissions=[f"{r}:use" for r in roles],
                        auth_time=_ms(t - auth_age + skew))  # fmt: skip
        self.emit(doc, t, publish_at)
        self.logins[sid] = (t, self.policy.timeouts_for(user_type, risk).absolute)
        self.kinds.setdefault(sid, "")

    def act(
        self,
        sid: str,
        user: str,
        t: float,
        action: str = "docs.read",
        publish_at: float | None = None,
    ) -> None:
        t = _ms(t)
        login_at, absolute = self.logins[sid]
        if abs(t - (login_at + absolute)) < TIE_GAP:  # keep clear of exact ties at a deadline
            t += 2 * TIE_GAP
        doc = self.doc("activity", t, user, session_id=sid, action=action, resource="/r")
        self.emit(doc, t, publish_at)

    def logout(self, sid: str, user: str, t: float) -> None:
        t = _ms(t)
        self.emit(self.doc("logout", t, user, session_id=sid), t)

    def role_change(
        self,
        user: str,
        t: float,
        granted: list[str],
        removed: list[str],
        publish_at: float | None = None,
    ) -> None:
        t = _ms(t)
        doc = self.doc(
            "role_change",
            t,
            user,
            roles_granted=granted,
            roles_removed=removed,
            actor="sim-admin",
        )
        self.emit(doc, t, publish_at)

    def signal(self, kind: str, user: str, t: float, **fields: Any) -> None:
        """An identity signal (session_revoked, user_revoked, risk_change) made at ``t``."""
        t = _ms(t)
        self.emit(self.doc(kind, t, user, source=SOURCE, **fields), t)

    def _appended(self, late: bool) -> list[tuple[float, dict[str, Any]]]:
        """The user's events at their earliest (or latest) append times: a record forwarded
        from a wrong partition is appended on the right one a little later."""
        return [
            (p.publish_at + (FORWARD_SLACK_S if p.foreign and late else 0.0), p.doc)
            for p in self.user_events
            if p.doc is not None
        ]

    def judge_user(self) -> bool:
        """Settle the current user's truth with the oracle, on the earliest and the latest
        append times; False when the outcome is not determined by the plan."""
        window = APPEND_SLACK_S
        lo = judge(self.policy, self._appended(False), self.budget, 0.0, window)
        hi = judge(self.policy, self._appended(True), self.budget, APPEND_SLACK_S, window)
        if lo.ambiguous or hi.ambiguous:
            return False
        if {s: r for s, (r, _) in lo.ends.items()} != {s: r for s, (r, _) in hi.ends.items()}:
            return False
        if sorted(lo.ended_session_used) != sorted(hi.ended_session_used) or sorted(
            lo.after_revocation
        ) != sorted(hi.after_revocation):
            return False
        user = self._appended(False)[0][1]["user_id"]
        for sid, (reason, at) in lo.ends.items():
            at_max = max(at, hi.ends[sid][1])
            self.plan.truth[sid] = Truth(sid, user, self.kinds.get(sid, ""), reason, at, at_max)
        self.plan.ended_session_used.extend(lo.ended_session_used)
        self.plan.activity_after_revocation.extend(lo.after_revocation)
        self.plan.events.extend(self.user_events)
        self.plan.late += self.user_late
        return True


def build_plan(
    policy: Policy,
    users: int,
    seed: int,
    start: float,
    spread: float,
    faults: frozenset[str] = frozenset(),
    budget: float = 0.0,
) -> Plan:
    """A reproducible plan: `users` users logging in over `spread` seconds from `start`, with
    the fault modes `faults` (see faults.py) against an enforcer whose producer-delay budget
    is `budget`. The same (seed, start, faults, budget) gives the same plan, ids included."""
    rng = random.Random(seed)
    # The traffic depends on the seed alone; ids also on the start time, so that a re-run of a
    # seed against the same topics is a new run (ended session ids are never reused).
    run_id = f"sim{seed:x}-{int(start * 1000) % 16**8:08x}"
    b = _Builder(policy, rng, run_id, budget)
    kinds, weights = zip(*KINDS.items(), strict=True)
    # Until every requested fault has touched a user, each user is forced to one still missing.
    missing = coverage_names(faults)
    for i in range(users):
        user = f"{run_id}-u{i}"
        kind = rng.choices(kinds, weights)[0]
        user_type, risk = rng.choice(USER_TYPES), rng.choice(RISKS)
        t0 = start + rng.uniform(0, spread)
        idle = policy.timeouts_for(user_type, risk).idle
        force = next((n for n in missing if kind not in UNSKEWED_KINDS or "skew" not in n), "")
        for attempt in range(MAX_DRAWS + 1):
            f = UserFaults()
            if faults and attempt < MAX_DRAWS:
                f = draw(rng, faults, kind, idle, policy.clock_skew_tolerance, force)
            b.begin_user(f)
            sid = f"{run_id}-s{i}" + (f"r{attempt}" if attempt else "")
            if f.reorder:
                _reorder_session(b, f.reorder, user, sid, t0, policy.timeouts_for("", "").idle)
            else:
                _session(b, kind, user, sid, t0, user_type, risk)
            if b.judge_user():
                names = _fault_names(f)
                b.plan.faults.update(names)
                missing = [n for n in missing if n not in names]
                break
        else:
            raise AssertionError(f"no unambiguous plan for user {user}")  # unreachable
    for n in range(max(1, users // 20)):
        at = start + rng.uniform(0, spread)
        raw = [b"\x00\x01not-json", b'{"type": "teleport"}', b'{"type": "login"}'][n % 3]
        b.plan.events.append(Planned(at, None, raw, f"{run_id}-poison"))
        b.plan.poison += 1
    b.plan.events.sort(key=lambda e: e.publish_at)
    ids = Counter(e.doc["event_id"] for e in b.plan.events if e.doc is not None)
    b.plan.duplicates = sum(n - 1 for n in ids.values())
    return b.plan


def _fault_names(f: UserFaults) -> list[str]:
    names = ["skew_ahead"] if f.skew > 0 else ["skew_behind"] if f.skew < 0 else []
    names += [n for n, on in (("delay", f.delay), ("duplicate", f.duplicate)) if on]
    names += ["partitioner"] if f.foreign else []
    return names + ([f"reorder:{f.reorder}"] if f.reorder else [])


def _session(
    b: _Builder, kind: str, user: str, sid: str, t0: float, user_type: str, risk: str
) -> None:
    tm = b.policy.timeouts_for(user_type, risk)
    idle, rng = tm.idle, b.rng
    margin = min(1.0, idle * 0.15)
    if kind == "step_up":
        b.login(sid, user, t0, user_type, risk, ["viewer"], auth_age=3600)
        b.act(sid, user, t0 + idle * 0.3, "payments.send")
    elif kind == "high_risk_ok":
        b.login(sid, user, t0, user_type, risk, ["viewer"])
        b.act(sid, user, t0 + min(1.0, idle * 0.2), "payments.send")
    elif kind == "signal_session":
        b.login(sid, user, t0, user_type, risk, ["viewer"])
        b.act(sid, user, t0 + idle * 0.3)
        b.signal("session_revoked", user, t0 + idle * 0.6, session_id=sid, signal="session_revoked")
    elif kind == "signal_user":
        second = f"{sid}b"
        b.login(sid, user, t0, user_type, risk, ["viewer"])
        b.login(second, user, t0 + 0.2, user_type, risk, ["viewer"])
        b.session_kind(second, kind)
        b.signal("user_revoked", user, t0 + idle * 0.5, signal="credential_compromise")
    elif kind == "risk_tightened":
        # after idle * 0.3 the session lives on with the tighter idle; after idle * 0.9 it is
        # past it (when the new profile's idle is shorter) and ends at the change
        b.login(sid, user, t0, user_type, risk, ["viewer"])
        t = t0 + idle * 0.4
        b.act(sid, user, t)
        b.signal("risk_change", user, t + idle * rng.choice((0.3, 0.9)), risk_profile="high")
    elif kind == "role_removed":
        second = f"{sid}b"
        b.login(sid, user, t0, user_type, risk, ["viewer", "editor"])
        b.login(second, user, t0 + 0.2, user_type, risk, ["editor"])
        b.session_kind(second, kind)
        b.role_change(user, t0 + idle * 0.5, [], ["editor"])
    else:
        b.login(sid, user, t0, user_type, risk, ["viewer"])
        t = t0
        if kind in ("idle", "grant"):
            for _ in range(rng.randint(1, 3)):
                t += idle * rng.uniform(0.4, 0.8)
                b.act(sid, user, t)
            if kind == "grant":
                b.role_change(user, t + idle * 0.2, ["editor"], [])
            if b.faults.late_activity:  # made just before its deadline, produced beyond budget
                made = min(t + idle, t0 + tm.absolute) - idle * 0.25
                b.act(sid, user, made, publish_at=made + idle * 0.25 + b.budget + 2.0)
        elif kind == "idle_just_under":
            for _ in range(2):
                t += idle - margin
                b.act(sid, user, t)
        elif kind == "idle_just_over":
            t += idle * 0.5
            b.act(sid, user, t)
            b.act(sid, user, t + idle + margin)  # after its end: an ended-session use
        elif kind == "absolute":
            absolute = tm.absolute
            while t < t0 + absolute + idle:
                t += idle * 0.6
                b.act(sid, user, t)
        elif kind == "logout":
            t += idle * rng.uniform(0.2, 0.6)
            b.act(sid, user, t)
            b.logout(sid, user, t + idle * 0.3)
            made = t + idle * 0.3 - 0.1  # made before the logout, sent after it
            b.act(sid, user, made, publish_at=made + 0.6)
    b.session_kind(sid, kind)


def _reorder_session(b: _Builder, kind: str, user: str, sid: str, t0: float, idle: float) -> None:
    """One of the reorder scenarios (all with the default user type and risk)."""
    ut, risk = "customer", "medium"
    if kind == "logout_before_login":
        b.login(sid, user, t0, ut, risk, ["viewer"], publish_at=t0 + idle * 0.5 + 0.3)
        b.logout(sid, user, t0 + idle * 0.5)
    elif kind == "removal_before_login":
        b.login(sid, user, t0, ut, risk, ["viewer", "editor"])
        late = f"{sid}b"
        removal = t0 + idle * 0.4
        b.login(late, user, t0 + idle * 0.2, ut, risk, ["editor"], publish_at=removal + 0.3)
        b.role_change(user, removal, [], ["editor"])
        b.session_kind(late, kind)
    elif kind == "revocation_before_login":
        b.login(sid, user, t0, ut, risk, ["viewer"])
        late = f"{sid}b"
        revoke = t0 + idle * 0.4
        b.login(late, user, t0 + idle * 0.2, ut, risk, ["viewer"], publish_at=revoke + 0.3)
        b.signal("user_revoked", user, revoke, signal="credential_compromise")
        b.session_kind(late, kind)
    else:  # stale_grant
        b.login(sid, user, t0, ut, risk, ["viewer"])
        b.role_change(user, t0 + idle * 0.3, [], ["editor"])
        b.role_change(user, t0 + idle * 0.2, ["editor"], [], publish_at=t0 + idle * 0.3 + 0.3)
        b.role_change(user, t0 + idle * 0.6, [], ["editor"])
    b.session_kind(sid, kind)


def estimate_events(users: int) -> int:
    """Rough events per user of the kind mix, to turn a rate into a login spread."""
    return users * 5
