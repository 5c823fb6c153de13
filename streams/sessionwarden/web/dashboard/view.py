"""What the dashboard shows, computed from the records it reads (pure: time is an argument).

Records arrive as decoded JSON documents with the wall-clock moment a read_committed consumer
received them, i.e. after their transaction committed. Session ids are shown as the salted hash
the log lines use, unless the operator asked for raw ids.

Every record is hostile input. Alerts (written by the detectors, a principal of their own) are
validated against the alert schema and refused whole when they do not match; revocations and
audit records (the enforcer's) are type-checked field by field. ``apply_*`` return whether
the record was usable, so the reader can count the rest. A record's own time is clamped to its
arrival: nothing received now can claim a later time, so a record dated in the future (year
9999) sorts as when it came and never hides later ones or outstays the window.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter, ValidationError

from sessionwarden.contracts.outputs import Alert
from sessionwarden.ops.stats import percentiles

DEADLINE_REASONS = frozenset({"idle_timeout", "absolute_timeout"})
LATENCY_EDGES_MS = (25, 50, 100, 200, 300, 500, 1000, 2000, 5000)
"""Upper bounds of the latency histogram's bins; one more bin holds everything slower."""
LIVE_WITHIN_S = 10.0
"""A revocation received later than this after its emission is a replay, not a latency."""
EVIDENCE_SESSIONS_SHOWN = 8
ALERT_IDS_KEPT = 10_000
"""Alert ids remembered: the detectors may deliver an alert again after a restart, with the
same ``alert_id`` (docs/DETECTORS.md); the feed shows it once."""
_ALERT: TypeAdapter[Alert] = TypeAdapter(Alert)


def alert_problem(doc: Any) -> str | None:
    """Why ``doc`` is not a valid alert (field and rule, never the value), or None."""
    try:
        _ALERT.validate_python(doc)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        return f"{where}: {first['msg']}"
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class DashboardState:
    """The dashboard's model; ``apply_*`` as records arrive, ``snapshot(now)`` to render."""

    show_session: Callable[[str], str]
    """Raw session id -> what the page shows (the salted hash, or the id itself)."""
    window_s: float = 600.0
    bucket_s: float = 60.0
    feed_size: int = 25
    latency_samples: int = 5000
    max_live: int = 1_000_000
    version: int = 0
    """Bumped by every change, so pushers can tell whether there is news."""
    _live: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    _revocations: deque[tuple[float, str]] = field(default_factory=deque)
    _latencies: deque[float] = field(default_factory=deque)
    _recent: list[dict[str, Any]] = field(default_factory=list)
    _alerts: list[dict[str, Any]] = field(default_factory=list)
    _alert_ids: dict[UUID, None] = field(default_factory=dict)
    """Insertion-ordered: the oldest is forgotten first."""
    _lag: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply_audit(self, doc: dict[str, Any], received_at: float) -> bool:
        kind, session_id = doc.get("type"), doc.get("session_id")
        if not isinstance(kind, str):
            return False
        if kind not in ("session_started", "session_ended", "session_risk_changed"):
            return True  # not shown; a role change names no session
        if not isinstance(session_id, str):
            return False
        if kind == "session_risk_changed":  # the session runs on the new profile's deadlines
            live = self._live.get(session_id)
            deadline, risk = _ts(doc.get("absolute_deadline")), _text(doc.get("risk_profile"))
            if deadline is None or risk is None:
                return False
            if live is not None:
                self._live[session_id] = (live[0], risk, deadline)
                self.version += 1
        elif kind == "session_started":
            deadline = _ts(doc.get("absolute_deadline"))
            user_type, risk = _text(doc.get("user_type")), _text(doc.get("risk_profile"))
            if deadline is None or user_type is None or risk is None:
                return False
            if len(self._live) < self.max_live:
                self._live[session_id] = (user_type, risk, deadline)
                self.version += 1
        elif kind == "session_ended" and self._live.pop(session_id, None) is not None:
            self.version += 1
        return True

    def apply_revocation(self, doc: dict[str, Any], received_at: float) -> bool:
        if doc.get("type") != "revocation":
            # The topic's other records: a revalidation, and a mass revocation's tenant record
            # (each of its sessions' own revocations follows and is shown).
            return doc.get("type") in ("revalidation", "tenant_revocation")
        reason, session_id = _text(doc.get("reason")), _text(doc.get("session_id"))
        emitted, effective = _ts(doc.get("emitted_at")), _ts(doc.get("effective_at"))
        if reason is None or session_id is None or emitted is None or effective is None:
            return False
        emitted = min(emitted, received_at)  # see the module: never later than its arrival
        self._live.pop(session_id, None)
        self._revocations.append((emitted, reason))
        latency_ms = None
        if reason in DEADLINE_REASONS and received_at - emitted <= LIVE_WITHIN_S:
            latency_ms = max(0.0, (received_at - effective) * 1000)
            self._latencies.append(latency_ms)
            if len(self._latencies) > self.latency_samples:
                self._latencies.popleft()
        self._push(self._recent, {
            "at": emitted, "reason": reason, "session": self.show_session(session_id),
            "user_id": _text(doc.get("user_id")), "tenant": _text(doc.get("tenant")),
            "latency_ms": latency_ms,
        })  # fmt: skip
        self.version += 1
        return True

    def apply_alert(self, doc: dict[str, Any], received_at: float) -> bool:
        """Show a valid alert; refuse (False) anything the alert schema does not accept."""
        try:
            alert = _ALERT.validate_python(doc)
        except ValidationError:
            return False
        if alert.alert_id in self._alert_ids:
            return True  # delivered again: shown already
        self._alert_ids[alert.alert_id] = None
        if len(self._alert_ids) > ALERT_IDS_KEPT:
            del self._alert_ids[next(iter(self._alert_ids))]
        sessions = alert.evidence.session_ids
        shown = EVIDENCE_SESSIONS_SHOWN
        self._push(self._alerts, {
            "at": min(alert.emitted_at.timestamp(), received_at), "kind": alert.kind,
            "severity": alert.severity, "user_id": alert.user_id, "tenant": alert.tenant,
            "summary": alert.summary,
            "evidence": {
                "sessions": [self.show_session(s) for s in sessions[:shown]],
                "more_sessions": max(0, len(sessions) - shown),
                "roles": list(alert.evidence.roles), "counts": dict(alert.evidence.counts),
            },
        })  # fmt: skip
        self.version += 1
        return True

    def set_lag(self, name: str, group: str, lag: int | None) -> None:
        entry = {"group": group, "lag": lag}
        if self._lag.get(name) != entry:
            self._lag[name] = entry
            self.version += 1

    def _push(self, feed: list[dict[str, Any]], item: dict[str, Any]) -> None:
        """Newest first by the record's own (clamped) time: partitions replay in no global
        order."""
        at = item["at"]
        if len(feed) >= self.feed_size and at <= feed[-1]["at"]:
            return
        bisect.insort(feed, item, key=lambda doc: -doc["at"])
        del feed[self.feed_size :]

    def expire(self, now: float) -> None:
        """Forget revocations older than the window and sessions past their absolute deadline."""
        while self._revocations and self._revocations[0][0] < now - self.window_s:
            self._revocations.popleft()
        over = [sid for sid, (_, _, deadline) in self._live.items() if deadline <= now]
        for sid in over:
            del self._live[sid]
        if over:
            self.version += 1

    def snapshot(self, now: float) -> dict[str, Any]:
        self.expire(now)
        return {
            "now": now,
            "version": self.version,
            "live": self._live_table(),
            "revocations": self._per_reason(now),
            "latency": self._latency(),
            "recent": list(self._recent),
            "alerts": list(self._alerts),
            "lag": dict(self._lag),
        }

    def _live_table(self) -> dict[str, Any]:
        cells = Counter((user_type, risk) for user_type, risk, _ in self._live.values())
        return {
            "total": len(self._live),
            "user_types": sorted({u for u, _ in cells}),
            "risks": sorted({r for _, r in cells}),
            "cells": [[u, r, n] for (u, r), n in sorted(cells.items())],
        }

    def _per_reason(self, now: float) -> dict[str, Any]:
        buckets = int(self.window_s // self.bucket_s)
        counts: dict[str, list[int]] = {}
        for emitted, reason in self._revocations:
            index = buckets - 1 - int((now - emitted) // self.bucket_s)
            if 0 <= index < buckets:
                counts.setdefault(reason, [0] * buckets)[index] += 1
        return {"bucket_s": self.bucket_s, "buckets": buckets, "by_reason": counts}

    def _latency(self) -> dict[str, Any]:
        bins = [0] * (len(LATENCY_EDGES_MS) + 1)
        for value in self._latencies:
            bins[bisect.bisect_left(LATENCY_EDGES_MS, value)] += 1
        p50, p99 = percentiles(self._latencies, 50, 99) if self._latencies else (None, None)
        return {
            "edges_ms": list(LATENCY_EDGES_MS),
            "bins": bins,
            "count": len(self._latencies),
            "p50_ms": p50,
            "p99_ms": p99,
        }
