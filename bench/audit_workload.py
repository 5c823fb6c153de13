"""The detector benchmark's audit records: session lifecycles, role changes and rare uses of
ended sessions for many users, in event-time order per user (what `bench/detect_throughput.py`
pre-fills its audit topic with)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

ROLES = [("viewer", 10), ("user", 20), ("support", 40), ("developer", 50)]


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def base(kind: str, user: str, t: float) -> dict[str, Any]:
    return {
        "type": kind,
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "occurred_at": ts(t),
        "user_id": user,
        "tenant": "acme",
    }


def session_records(rng: random.Random, user: str, sid: str, t: float) -> list[dict[str, Any]]:
    """One session's lifecycle: start, maybe a high-risk operation, end."""
    start = base("session_started", user, t)
    start.update(
        session_id=sid,
        user_type="customer",
        risk_profile="medium",
        auth_method="password",
        roles=["user"],
        privilege_level=20,
        idle_timeout_s=900.0,
        absolute_timeout_s=43200.0,
        absolute_deadline=ts(t + 43200),
    )
    records = [start]
    if rng.random() < 0.05:
        op = base("high_risk_operation", user, t + 30)
        op.update(
            session_id=sid,
            action="payments.send",
            resource="/acct/1",
            auth_age_s=30.0,
            max_auth_age_s=900.0,
            allowed=True,
        )
        records.append(op)
    end_at = t + rng.uniform(60, 900)
    reason = rng.choices(["logout", "idle_timeout", "absolute_timeout"], [60, 35, 5])[0]
    end = base("session_ended", user, end_at)
    end.update(
        session_id=sid,
        reason=reason,
        started_at=ts(t),
        ended_at=ts(end_at),
        duration_s=end_at - t,
    )
    records.append(end)
    return records


def role_change(rng: random.Random, user: str, t: float) -> dict[str, Any]:
    (before, p_before), (after, p_after) = sorted(rng.sample(ROLES, 2), key=lambda r: r[1])
    doc = base("role_changed", user, t)
    doc.update(
        roles_granted=[after],
        roles_removed=[before],
        actor="admin-7",
        privilege_before=p_before,
        privilege_after=p_after,
        sensitive_granted=[],
        live_sessions=1,
    )
    return doc


def ended_used(user: str, t: float, sid: str = "gone") -> dict[str, Any]:
    doc = base("ended_session_used", user, t)
    doc.update(session_id=sid, action="docs.read", resource="/doc", session_state="unknown")
    return doc


def workload(n: int, users: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """About n records over the last hour, in event-time order per user."""
    rng = random.Random(seed)
    now = time.time()
    produced = 0
    clock = now - 3600
    step = 3600 / max(1, n // 2)
    while produced < n:
        user = f"user-{rng.randrange(users)}"
        clock += step
        batch = session_records(rng, user, f"s-{uuid.uuid4().hex[:12]}", clock)
        if rng.random() < 0.03:
            batch.append(role_change(rng, user, clock + 1))
        if rng.random() < 0.002:
            batch.append(ended_used(user, clock + 2))
        batch = batch[: n - produced]
        yield from batch
        produced += len(batch)
