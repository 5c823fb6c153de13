"""The drill's seeded plan, pure: for every session, when it signs in, when its last activity
is, how it ends (idle timeout or logout), hence its deadline; and when it tries its permissions.

Attempts are sparse while the session is far from its deadline (every ``sparse_s``) and dense
around it (every 50-100 ms, seeded) from ``dense_before_s`` before the deadline to ``after_s``
past ``deadline + tolerance``, so the first refusal is seen within 100 ms of when it began.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SessionPlan:
    label: str  # d0001...: what the report shows (never the session id)
    user: str
    start: float  # login, seconds after the drill's start
    activity: tuple[float, ...]  # activity events after the login
    logout: float | None  # the logout's time, or None: the session idles out
    deadline: float  # when access must stop
    reason: str  # idle_timeout or logout
    attempts: tuple[float, ...]  # when to try the permissions


@dataclass(frozen=True)
class PlanOptions:
    sessions: int
    seed: int = 7
    idle_s: float = 3.0  # the policy's idle timeout for the drill's sessions
    rate: float = 2.0  # sessions started per second
    active_s: tuple[float, float] = (0.5, 2.5)  # how long a session keeps sending activity
    logout_share: float = 0.25
    tolerance_s: float = 1.0
    sparse_s: float = 0.5
    dense_before_s: float = 0.5
    after_s: float = 0.5
    spacing_s: tuple[float, float] = (0.05, 0.1)


def make_plan(options: PlanOptions) -> list[SessionPlan]:
    """The sessions of one drill, the same for the same options."""
    rng = random.Random(options.seed)
    plans = []
    for i in range(options.sessions):
        start = i / options.rate
        active = rng.uniform(*options.active_s)
        activity = tuple(start + t for t in _steps(0.5, active))
        last = activity[-1] if activity else start
        logout: float | None = None
        if rng.random() < options.logout_share:
            logout = last + 0.3
            deadline, reason = logout, "logout"
        else:
            deadline, reason = last + options.idle_s, "idle_timeout"
        attempts = _attempts(rng, options, start + 0.3, deadline)
        plans.append(SessionPlan(f"d{i + 1:04d}", f"drill-user-{i + 1}", start, activity,
                                 logout, deadline, reason, attempts))  # fmt: skip
    return plans


def idp_plan(options: PlanOptions, sessions: int) -> list[SessionPlan]:
    """The idp layer's sessions: a plan of their own (another seed), labelled k0001...,
    for users of their own."""
    plans = make_plan(replace(options, sessions=sessions, seed=options.seed + 1))
    return [replace(p, label=f"k{i + 1:04d}", user=f"drill-kc-{i + 1}")
            for i, p in enumerate(plans)]  # fmt: skip


def _steps(every: float, until: float) -> list[float]:
    n = int(until / every)
    return [every * (k + 1) for k in range(n)]


def _attempts(
    rng: random.Random, options: PlanOptions, first: float, deadline: float
) -> tuple[float, ...]:
    dense_from = deadline - options.dense_before_s
    end = deadline + options.tolerance_s + options.after_s
    times, t = [], first
    while t < end:
        times.append(t)
        t += rng.uniform(*options.spacing_s) if t >= dense_from else options.sparse_s
    return tuple(times)
