"""Role changes ordered by event time (pure): per user and role, the time of its last change.

A role change applies to a role only if its effective time is newer than that role's last
change, so an older grant read after a newer removal re-grants nothing, and a login older than
a removal of one of its roles loses that role however late the login is read.
"""

from __future__ import annotations

from collections.abc import Iterable

from sessionwarden.enforcer.engine.sessions import MAX_ROLE_TIMES, RoleTimes


def removed_after(times: RoleTimes | None, roles: Iterable[str], at: float) -> RoleTimes:
    """The roles among ``roles`` whose last change is a removal later than ``at``."""
    if not times:
        return {}
    return {r: times[r] for r in roles if r in times and not times[r][1] and times[r][0] > at}


def apply_role_times(
    times: RoleTimes | None,
    granted: Iterable[str],
    removed: Iterable[str],
    at: float,
    keep: float,
) -> tuple[RoleTimes | None, frozenset[str], list[str]]:
    """Record one change at ``at``: (the new times, the removals and grants that apply).

    A role both granted and removed by one change is removed. Times older than ``keep``
    seconds before ``at`` are dropped (no session outlives its absolute timeout).
    """
    current = {r: v for r, v in (times or {}).items() if v[0] >= at - keep}
    asked_removed = list(dict.fromkeys(removed))
    gone = set(asked_removed)
    applied_removed = [r for r in asked_removed if _newer(current, r, at)]
    applied_granted = [
        r for r in dict.fromkeys(granted) if r not in gone and _newer(current, r, at)
    ]
    for role in applied_removed:
        current[role] = (at, False)
    for role in applied_granted:
        current[role] = (at, True)
    if len(current) > MAX_ROLE_TIMES:
        for role in sorted(current, key=lambda r: current[r][0])[: len(current) - MAX_ROLE_TIMES]:
            del current[role]
    return current or None, frozenset(applied_removed), applied_granted


def _newer(times: RoleTimes, role: str, at: float) -> bool:
    last = times.get(role)
    return last is None or at > last[0]
