"""Seeded, reproducible traffic plans and their ground truth (pure: no Kafka, no clock).

A plan is a list of events, each with the time it happens (``occurred_at``) and the time it is
published (usually the same; later for deliberately late events). The ground truth is computed
from the plan by an oracle that restates the enforcement rules independently of the enforcer:
for each session, how and when it must end under the policy.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.policy import Policy

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
}
DUPLICATE_RATE = 0.03
TIE_GAP = 0.01  # seconds: no planned event lands this close to a session's absolute deadline

TENANT = "sim"  # every simulated event's tenant; the ground truth names it


@dataclass
class Planned:
    publish_at: float
    doc: dict[str, Any] | None  # None: a poison record (raw bytes in ``raw``)
    raw: bytes = b""
    key: str = ""


@dataclass
class Truth:
    """How a session must end: reason and time; plus the anomalies it must produce."""

    session_id: str
    user_id: str
    kind: str
    reason: str = ""
    at: float = 0.0


@dataclass
class Plan:
    run_id: str
    events: list[Planned] = field(default_factory=list)
    truth: dict[str, Truth] = field(default_factory=dict)
    ended_session_used: list[str] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    poison: int = 0

    @property
    def last_deadline(self) -> float:
        return max((t.at for t in self.truth.values()), default=0.0)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _ms(t: float) -> float:
    """Plan times are whole milliseconds: what the oracle sees is what goes on the wire."""
    return round(t, 3)


class _Builder:
    def __init__(self, policy: Policy, rng: random.Random, run_id: str) -> None:
        self.policy = policy
        self.rng = rng
        self.run_id = run_id
        self.plan = Plan(run_id)
        self.counter = 0
        # per session: ordered (time, kind, payload) the oracle replays
        self.timeline: dict[str, list[tuple[float, str, Any]]] = {}

    def doc(self, kind: str, t: float, user: str, **fields: Any) -> dict[str, Any]:
        t = _ms(t)
        self.counter += 1
        eid = uuid.uuid5(uuid.NAMESPACE_URL, f"sessionwarden-sim/{self.run_id}/{self.counter}")
        base = {
            "type": kind,
            "event_id": str(eid),
            "occurred_at": iso(t),
            "user_id": user,
            "tenant": TENANT,
        }
        base.update(fields)
        return base

    def emit(self, doc: dict[str, Any], publish_at: float | None = None) -> None:
        t = datetime.fromisoformat(doc["occurred_at"]).timestamp()
        self.plan.events.append(Planned(publish_at if publish_at is not None else t, doc))
        if doc["type"] == "activity" and self.rng.random() < DUPLICATE_RATE:
            self.plan.events.append(Planned(t + 0.05, doc))  # same event id: a producer retry
            self.plan.duplicates += 1

    def login(
        self,
        sid: str,
        user: str,
        t: float,
        user_type: str,
        risk: str,
        roles: list[str],
        auth_age: float = 0.0,
    ) -> None:
        t = _ms(t)
        self.emit(
            self.doc(
                "login",
                t,
                user,
                session_id=sid,
                user_type=user_type,
                risk_profile=risk,
                roles=roles,
                permissions=[f"{r}:use" for r in roles],
                auth_method="password",
                auth_time=iso(_ms(t - auth_age)),
            )
        )
        tm = self.policy.timeouts_for(user_type, risk)
        auth_time = _ms(t - auth_age)
        self.timeline[sid] = [(t, "login", (tm.idle, tm.absolute, auth_time, set(roles)))]
        self.plan.truth[sid] = Truth(sid, user, "")

    def act(self, sid: str, user: str, t: float, action: str = "docs.read") -> None:
        t = _ms(t)
        login_at, _, (_, absolute, _, _) = self.timeline[sid][0]
        if abs(t - (login_at + absolute)) < TIE_GAP:  # keep clear of exact ties at a deadline
            t += 2 * TIE_GAP
        self.emit(self.doc("activity", t, user, session_id=sid, action=action, resource="/r"))
        self.timeline[sid].append((t, "activity", action))

    def logout(self, sid: str, user: str, t: float) -> None:
        t = _ms(t)
        self.emit(self.doc("logout", t, user, session_id=sid))
        self.timeline[sid].append((t, "logout", None))

    def role_change(
        self, user: str, sids: list[str], t: float, granted: list[str], removed: list[str]
    ) -> None:
        t = _ms(t)
        self.emit(
            self.doc(
                "role_change",
                t,
                user,
                roles_granted=granted,
                roles_removed=removed,
                actor="sim-admin",
            )
        )
        for sid in sids:
            self.timeline[sid].append((t, "role_change", (set(granted), set(removed))))


def _oracle(policy: Policy, timeline: list[tuple[float, str, Any]]) -> tuple[str, float, int]:
    """Replay one session's events under the rules; (reason, at, uses after the end)."""
    _, _, (idle, absolute, auth_time, roles) = timeline[0]
    login_at = timeline[0][0]
    last, abs_deadline = login_at, login_at + absolute
    end: tuple[str, float] | None = None
    used_after = 0
    for t, kind, payload in sorted(timeline[1:], key=lambda row: row[0]):
        if end is None:
            deadline = min(last + idle, abs_deadline)
            if deadline <= t:
                end = (
                    "absolute_timeout" if abs_deadline <= last + idle else "idle_timeout",
                    deadline,
                )
        if end is not None:
            used_after += kind == "activity" and t > end[1]
            continue
        if kind == "activity":
            last = max(last, t)
            rule = policy.high_risk_rule(payload)
            if rule is not None:
                if t - auth_time > rule.max_auth_age:
                    end = ("step_up_required", t)
                elif rule.idle is not None:
                    idle = min(idle, rule.idle)
        elif kind == "logout":
            end = ("logout", t)
        elif kind == "role_change":
            granted, removed = payload
            if roles & removed:
                end = ("permissions_revoked", t)
            roles |= granted
    if end is None:
        deadline = min(last + idle, abs_deadline)
        end = ("absolute_timeout" if abs_deadline <= last + idle else "idle_timeout", deadline)
    return end[0], end[1], used_after


def build_plan(policy: Policy, users: int, seed: int, start: float, spread: float) -> Plan:
    """A reproducible plan: `users` users logging in over `spread` seconds from `start`.
    The same (seed, start) gives the same plan, ids included."""
    rng = random.Random(seed)
    # The traffic depends on the seed alone; ids also on the start time, so that a re-run of a
    # seed against the same topics is a new run (ended session ids are never reused).
    run_id = f"sim{seed:x}-{int(start * 1000) % 16**8:08x}"
    b = _Builder(policy, rng, run_id)
    kinds, weights = zip(*KINDS.items(), strict=True)
    for i in range(users):
        user = f"{run_id}-u{i}"
        kind = rng.choices(kinds, weights)[0]
        user_type, risk = rng.choice(USER_TYPES), rng.choice(RISKS)
        t0 = start + rng.uniform(0, spread)
        _session(b, kind, user, f"{run_id}-s{i}", t0, user_type, risk)
    for n in range(max(1, users // 20)):
        at = start + rng.uniform(0, spread)
        raw = [b"\x00\x01not-json", b'{"type": "teleport"}', b'{"type": "login"}'][n % 3]
        b.plan.events.append(Planned(at, None, raw, f"{run_id}-poison"))
        b.plan.poison += 1
    for sid, timeline in b.timeline.items():
        reason, at, used = _oracle(policy, timeline)
        truth = b.plan.truth[sid]
        truth.reason, truth.at = reason, at
        b.plan.ended_session_used.extend([sid] * used)
    b.plan.events.sort(key=lambda e: e.publish_at)
    return b.plan


def _session(
    b: _Builder, kind: str, user: str, sid: str, t0: float, user_type: str, risk: str
) -> None:
    b.plan.truth.setdefault(sid, Truth(sid, user, kind))
    tm = b.policy.timeouts_for(user_type, risk)
    idle, rng = tm.idle, b.rng
    margin = min(1.0, idle * 0.15)
    if kind == "step_up":
        b.login(sid, user, t0, user_type, risk, ["viewer"], auth_age=3600)
        b.act(sid, user, t0 + idle * 0.3, "payments.send")
    elif kind == "high_risk_ok":
        b.login(sid, user, t0, user_type, risk, ["viewer"])
        b.act(sid, user, t0 + min(1.0, idle * 0.2), "payments.send")
    elif kind == "role_removed":
        second = f"{sid}b"
        b.login(sid, user, t0, user_type, risk, ["viewer", "editor"])
        b.login(second, user, t0 + 0.2, user_type, risk, ["editor"])
        b.plan.truth[second] = Truth(second, user, kind)
        b.role_change(user, [sid, second], t0 + idle * 0.5, [], ["editor"])
    else:
        b.login(sid, user, t0, user_type, risk, ["viewer"])
        t = t0
        if kind in ("idle", "grant"):
            for _ in range(rng.randint(1, 3)):
                t += idle * rng.uniform(0.4, 0.8)
                b.act(sid, user, t)
            if kind == "grant":
                b.role_change(user, [sid], t + idle * 0.2, ["editor"], [])
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
            late = b.doc(
                "activity",
                t + idle * 0.3 - 0.1,
                user,
                session_id=sid,
                action="docs.read",
                resource="/late",
            )
            b.plan.events.append(Planned(t + idle * 0.3 + 0.5, late))  # made before, sent after
            b.plan.late += 1
    b.plan.truth[sid].kind = kind


def estimate_events(users: int) -> int:
    """Rough events per user of the kind mix, to turn a rate into a login spread."""
    return users * 5
