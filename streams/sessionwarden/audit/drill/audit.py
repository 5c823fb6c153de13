"""The drill's audit, pure: attempts in, refusal delays and verdicts out.

Every attempt is one use of a permission: (case, layer, session, path, time, allowed); the
drivers stamp a granted attempt with the moment it was sent and a refused one with the moment
its answer came, so a slow answer can neither hide a bypass nor make a false cut-off. Each
session of a case has a deadline (the moment its access must stop: last activity + idle
timeout, or the logout). An attempt that succeeded later than ``deadline + tolerance`` is a
**bypass**; an attempt refused before the deadline is a **false cut-off**. The refusal delay of
a session on a case is the time from its deadline to its first refused attempt at or after it.
A session is **unproven** on a case, and fails the drill too, when no attempt was made late
enough to tell (never refused, none past ``deadline + tolerance``), or, on a measured case,
when it was never seen granted before its deadline (a refusal then proves nothing).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sessionwarden.ops.stats import percentiles as stats_percentiles


@dataclass(frozen=True)
class Attempt:
    case: str  # the path an attacker or a buggy service would take, e.g. "http-api"
    layer: str  # http, websocket, postgres, browser
    session: str  # a label for the session (never the raw id)
    path: str  # the URL path, query, or page
    at: float  # wall-clock seconds
    allowed: bool


@dataclass(frozen=True)
class Deadline:
    session: str
    at: float
    reason: str  # idle_timeout, logout, ...


@dataclass(frozen=True)
class Case:
    """One enforcement path and its expected outcome. ``measured``: the attempts straddle the
    deadline, so the first refusal measures the layer's delay; otherwise (a service started
    after the revocation) every attempt past the deadline must be refused, and the time to the
    first refusal says nothing about the layer."""

    name: str
    layer: str
    expected: str
    measured: bool = True


@dataclass(frozen=True)
class Violation:
    kind: str  # bypass, false_cutoff, unproven
    case: str
    layer: str
    session: str
    path: str
    at: float  # the attempt's time (for unproven: the deadline)
    offset_s: float  # at - deadline


@dataclass
class Stats:
    layer: str
    reason: str
    count: int
    p50: float
    p99: float
    max: float


@dataclass
class Audit:
    tolerance_s: float
    stats: list[Stats]
    violations: list[Violation]
    delays: dict[str, list[float]] = field(default_factory=dict)  # layer -> refusal delays
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(1 for v in self.violations if v.kind == kind)

    @property
    def passed(self) -> bool:
        return not self.violations


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 (sessionwarden.ops.stats.percentiles) and max of a non-empty list."""
    if not values:
        raise ValueError("no values")
    p50, p99 = stats_percentiles(values, 50, 99)
    return p50, p99, max(values)


def audit(
    cases: Iterable[Case],
    deadlines: dict[str, Deadline],
    attempts: Iterable[Attempt],
    tolerance_s: float,
    planned: Iterable[tuple[str, str]] = (),
) -> Audit:
    """Verdicts and delays of every case. ``planned`` (case, session) pairs that made no
    attempt at all, or whose session has no deadline, are unproven."""
    by_name = {c.name: c for c in cases}
    grouped: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for pair in planned:
        grouped.setdefault(pair, [])
    for a in attempts:
        if a.case in by_name:
            grouped[(a.case, a.session)].append(a)
    violations: list[Violation] = []
    delays: dict[tuple[str, str], list[float]] = defaultdict(list)
    counts = dict.fromkeys(("sessions", "attempts", "bypasses", "false_cutoffs", "unproven"), 0)
    summary: dict[str, dict[str, Any]] = {
        c.name: {"layer": c.layer, "expected": c.expected, **counts} for c in by_name.values()
    }
    for (name, session), items in sorted(grouped.items()):
        case, deadline = by_name[name], deadlines.get(session)
        if deadline is None:  # its events never went out: nothing can be judged
            found, delay = [Violation("unproven", name, case.layer, session, "", 0.0, 0.0)], None
        else:
            found, delay = _judge(case, deadline, sorted(items, key=lambda a: a.at), tolerance_s)
        violations.extend(found)
        row = summary[name]
        row["sessions"] += 1
        row["attempts"] += len(items)
        for v in found:
            key = {"bypass": "bypasses", "false_cutoff": "false_cutoffs"}.get(v.kind, v.kind)
            row[key] += 1
        if deadline is not None and delay is not None and case.measured:
            delays[(case.layer, deadline.reason)].append(delay)
    stats = [Stats(layer, reason, len(v), *percentiles(v)) for (layer, reason), v in
             sorted(delays.items())]  # fmt: skip
    per_layer: dict[str, list[float]] = defaultdict(list)
    for (layer, _), values in delays.items():
        per_layer[layer].extend(values)
    violations.sort(key=lambda v: (v.kind, v.case, v.session, v.at))
    return Audit(tolerance_s, stats, violations, dict(per_layer), summary)


def _judge(
    case: Case, deadline: Deadline, items: list[Attempt], tolerance_s: float
) -> tuple[list[Violation], float | None]:
    """The violations of one session on one case, and its refusal delay (None: never refused
    at or after the deadline)."""
    found: list[Violation] = []
    delay: float | None = None
    late = deadline.at + tolerance_s
    for a in items:
        offset = a.at - deadline.at
        if not a.allowed and a.at < deadline.at:
            found.append(Violation("false_cutoff", case.name, case.layer, deadline.session,
                                   a.path, a.at, offset))  # fmt: skip
        elif not a.allowed and delay is None:
            delay = offset
        elif a.allowed and a.at > late:
            found.append(Violation("bypass", case.name, case.layer, deadline.session,
                                   a.path, a.at, offset))  # fmt: skip
    seen_late = any(a.at > late for a in items)
    granted = any(a.allowed and a.at < deadline.at for a in items)
    if (delay is None and not seen_late) or (case.measured and not granted):
        found.append(Violation("unproven", case.name, case.layer, deadline.session, "",
                               deadline.at, 0.0))  # fmt: skip
    return found, delay
