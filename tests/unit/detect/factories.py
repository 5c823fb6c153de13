"""Audit records, a fake clock and a test policy for the detectors' unit tests."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson

from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.outputs import (
    EndedSessionUsed,
    ForeignSessionEvent,
    HighRiskOperation,
    RoleChanged,
    SessionEnded,
    SessionStarted,
)
from sessionwarden.detect.app import DetectShell
from sessionwarden.detect.documents import DEFAULT_MAX_DOCUMENTS
from sessionwarden.detect.engine import Engine
from sessionwarden.policy import Policy, parse_policy

T0 = 1_800_000_000.0  # a fixed epoch; every test time is T0 + seconds

POLICY_TOML = """
name = "detect-unit"
[defaults]
idle = "100s"
absolute = "1000s"

[roles.viewer]
privilege = 10

[roles.editor]
privilege = 30

[roles.support]
privilege = 40

[roles.admin]
privilege = 90
sensitive = true

[anomaly]
repeated_expirations = { count = 3, window = "60s" }
escalation = { min_levels = 2, window = "120s", high_risk_within = "30s" }
concurrent_sessions = { max = 2 }
cooldown = "300s"
"""


def policy() -> Policy:
    return parse_policy(POLICY_TOML, "detect-unit.toml")


class FakeClock:
    """Event time under test control: starts at T0, moves only when told."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def __call__(self) -> float:
        return self.now


def eid() -> str:
    return str(uuid.uuid4())


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _base(user: str, t: float, event_id: str | None, tenant: str = "acme") -> dict[str, Any]:
    return {
        "event_id": event_id or eid(),
        "occurred_at": at(t),
        "user_id": user,
        "tenant": tenant,
    }


def started(
    sid: str, user: str, t: float, absolute: float = 1000.0, tenant: str = "acme"
) -> SessionStarted:
    return SessionStarted(
        **_base(user, t, None, tenant),
        session_id=sid,
        user_type="customer",
        risk_profile="medium",
        auth_method="password",
        roles=["viewer"],
        privilege_level=10,
        idle_timeout_s=100.0,
        absolute_timeout_s=absolute,
        absolute_deadline=at(t + absolute),
    )


def ended(
    sid: str,
    user: str,
    t: float,
    reason: str = "idle_timeout",
    event_id: str | None = None,
    tenant: str = "acme",
) -> SessionEnded:
    return SessionEnded(
        **_base(user, t, event_id, tenant),
        session_id=sid,
        reason=reason,  # type: ignore[arg-type]
        started_at=at(t - 100),
        ended_at=at(t),
        duration_s=100.0,
    )


def role_changed(
    user: str,
    t: float,
    before: int,
    after: int,
    granted: list[str],
    sensitive: list[str] | None = None,
    actor: str = "admin-7",
    event_id: str | None = None,
) -> RoleChanged:
    return RoleChanged(
        **_base(user, t, event_id),
        roles_granted=granted,
        actor=actor,
        privilege_before=before,
        privilege_after=after,
        sensitive_granted=sensitive or [],
        live_sessions=1,
    )


def high_risk(
    user: str, sid: str, t: float, action: str = "payments.send", allowed: bool = True
) -> HighRiskOperation:
    return HighRiskOperation(
        **_base(user, t, None),
        session_id=sid,
        action=action,
        resource="/acct/1",
        auth_age_s=10.0,
        max_auth_age_s=900.0,
        allowed=allowed,
    )


def ended_used(
    user: str, sid: str, t: float, reason: str | None = "logout", event_id: str | None = None
) -> EndedSessionUsed:
    return EndedSessionUsed(
        **_base(user, t, event_id),
        session_id=sid,
        action="docs.read",
        resource="/doc/7",
        session_state="ended" if reason else "unknown",
        ended_reason=reason,  # type: ignore[arg-type]
    )


def foreign(
    claimant: str, owner: str, sid: str, t: float, event_type: str = "activity"
) -> ForeignSessionEvent:
    return ForeignSessionEvent(
        **_base(claimant, t, None),
        session_id=sid,
        event_type=event_type,  # type: ignore[arg-type]
        owner_user_id=owner,
        session_state="live",
        action="docs.read" if event_type == "activity" else None,
        cause_event_id=uuid.uuid4(),
    )


def lifecycle(seed: int, users: int, length: int, t0: float = T0, sessions: str = "") -> list[Any]:
    """Audit records of users ``u0`` ... shaped to make every detector fire and the cooldown
    withhold repeats: sessions started and ended in churn (a live-session count that goes up
    and down), expirations, grants (rises, sensitive, self-granted), high-risk operations and
    uses of ended or unknown sessions. The same seed gives the same kinds, users and times.
    Session ids start with ``sessions``."""
    rng = random.Random(seed)
    records: list[Any] = []
    live: dict[str, list[str]] = {f"u{i}": [] for i in range(users)}
    serial = 0
    t = t0
    for _ in range(length):
        t += rng.choice((0.5, 1.0, 2.0, 5.0, 20.0))
        user = f"u{rng.randrange(users)}"
        roll = rng.random()
        if roll < 0.35 or not live[user]:
            serial += 1
            sid = f"{sessions}{user}-s{serial}"
            live[user].append(sid)
            records.append(started(sid, user, t, absolute=rng.choice((30.0, 400.0, 5000.0))))
        elif roll < 0.65:
            sid = live[user].pop(rng.randrange(len(live[user])))
            reason = rng.choice(("idle_timeout", "absolute_timeout", "logout", "operator"))
            records.append(ended(sid, user, t, reason=reason))
        elif roll < 0.78:
            before = rng.choice((10, 30))
            after = rng.choice((30, 40, 90))
            granted = ["admin"] if after == 90 else ["support"]
            sensitive = granted if after == 90 else []
            actor = user if rng.random() < 0.15 else "admin-7"
            records.append(role_changed(user, t, before, after, granted, sensitive, actor))
        elif roll < 0.9:
            records.append(high_risk(user, live[user][0], t))
        else:
            reason = rng.choice(("logout", None, "operator"))
            records.append(ended_used(user, "gone", t, reason=reason))
    return records


# --- a worker's surroundings: the changelog it writes, the alert topic ----------------------


def audit_event(record: Any, partition: int, offset: int) -> Any:
    return SimpleNamespace(
        value=encode(record),
        message=SimpleNamespace(topic="t.audit", partition=partition, offset=offset),
    )


class Changelog:
    """Every write sent, per changelog partition, in order."""

    def __init__(self) -> None:
        self.logs: dict[int, list[tuple[Any, bytes | None]]] = {}

    def restore(self) -> dict[Any, bytes]:
        table: dict[Any, bytes] = {}
        for log in self.logs.values():
            for key, value in log:
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
        return table

    def lengths(self) -> dict[int, int]:
        return {partition: len(log) for partition, log in self.logs.items()}

    def cut(self, keep: dict[int, int]) -> None:
        for partition, log in self.logs.items():
            del log[keep.get(partition, 0) :]


class LoggedTable(dict[Any, bytes]):
    """The state table: each write goes to the changelog partition of the current event."""

    def __init__(self, changelog: Changelog, data: dict[Any, bytes]) -> None:
        super().__init__(data)
        self.changelog = changelog
        self.partition = 0

    def current(self, event: Any) -> None:
        self.partition = event.message.partition

    def _send(self, key: Any, value: bytes | None) -> None:
        self.changelog.logs.setdefault(self.partition, []).append((key, value))

    def __setitem__(self, key: Any, value: bytes) -> None:
        self._send(key, value)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._send(key, None)
        super().__delitem__(key)


class Delivered:
    """The alert topic: every alert is delivered at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append(orjson.loads(value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Worker:
    """One life of the detect worker: its state restored from the changelog."""

    def __init__(self, changelog: Changelog, max_documents: int = DEFAULT_MAX_DOCUMENTS) -> None:
        self.table = LoggedTable(changelog, changelog.restore())
        self.topic = Delivered()
        self.shell = DetectShell(
            Engine(policy()), self.table, self.topic, max_documents=max_documents
        )

    def judge(
        self, batches: list[list[Any]], after: Callable[[list[Any]], None] = lambda _: None
    ) -> None:
        async def feed() -> None:
            for batch in batches:
                await self.shell.handle_batch(batch, self.table.current)
                after(batch)

        asyncio.run(feed())
