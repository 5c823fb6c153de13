"""The Quix Streams peer of the enforcer benchmark: the same session-timeout job, as far as
Quix Streams' API can express it. Runs in its own venv (bench/.venv-quix, see
bench/quix-requirements.txt), so it imports nothing of ours; the policy table comes as the JSON
of bench/peer_policy.py.

    python bench/quix_peer.py drain SERVERS GROUP INPUT REVOCATIONS POLICY_JSON EVENTS
    python bench/quix_peer.py serve SERVERS GROUP INPUT REVOCATIONS POLICY_JSON

Where it cannot follow the enforcer: Quix Streams has no timers or punctuators, and its state
is scoped to the key of the record being processed, so a session can only be ended while a
record of its own key is processed (a late request, a logout). A silent session is never
revoked. Deadlines, timeouts and reasons are otherwise the enforcer's; state lives in
Quix's RocksDB store with changelog topics, processing_guarantee "exactly-once".
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from quixstreams import Application, State

STATS = {"events": 0, "t0": 0.0, "t1": 0.0, "live": 0, "rss_empty": 0}


def rss_bytes() -> int:
    """As bench.common.rss_bytes, which this venv cannot import (it pulls in our settings)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class Enforce:
    """Per record: login opens a session, activity moves its idle deadline, logout ends it;
    a record that comes after the session's deadline ends it at the deadline."""

    def __init__(self, policy: dict[str, Any], total: int, app: Application | None) -> None:
        self.table = policy["table"]
        self.skew = policy["clock_skew_tolerance"]
        self.version = policy["version"]
        self.total = total
        self.app = app

    def timeouts(self, user_type: str, risk_profile: str) -> list[float]:
        row = self.table.get(user_type) or self.table["*"]
        return row.get(risk_profile) or row["*"]

    def __call__(self, e: dict[str, Any], state: State) -> list[dict[str, Any]]:
        if not STATS["events"]:
            STATS["t0"] = time.perf_counter()
            STATS["rss_empty"] = rss_bytes()  # before any session is held
        STATS["events"] += 1
        if STATS["events"] == self.total and self.app is not None:
            STATS["t1"] = time.perf_counter()
            self.app.stop()
        try:
            return self.handle(e, state)
        except (KeyError, TypeError, ValueError):
            return []  # the enforcer dead-letters what it cannot read

    def handle(self, e: dict[str, Any], state: State) -> list[dict[str, Any]]:
        t = datetime.fromisoformat(e["occurred_at"]).timestamp()
        now = time.time()
        if t > now + self.skew:
            return []
        sid = e["session_id"]
        kind = e["type"]
        sess = state.get(sid)
        if kind == "login":
            if sess is None:
                idle, absolute = self.timeouts(e["user_type"], e["risk_profile"])
                # [live, last_activity, idle, absolute_deadline, roles, permissions]
                state.set(sid, [1, t, idle, t + absolute, e["roles"], e["permissions"]])
                STATS["live"] += 1
            return []
        if sess is None or not sess[0] or kind not in ("activity", "logout"):
            return []
        deadline, reason = self.deadline(sess)
        if deadline <= t:
            return [self.end(e, sid, sess, state, reason, deadline, now)]
        if kind == "logout":
            return [self.end(e, sid, sess, state, "logout", t, now)]
        if t > sess[1]:
            sess[1] = t
            state.set(sid, sess)
        return []

    @staticmethod
    def deadline(sess: list[Any]) -> tuple[float, str]:
        idle = sess[1] + sess[2]
        if sess[3] <= idle:
            return sess[3], "absolute_timeout"
        return idle, "idle_timeout"

    def end(
        self,
        e: dict[str, Any],
        sid: str,
        sess: list[Any],
        state: State,
        reason: str,
        at: float,
        now: float,
    ) -> dict[str, Any]:
        sess[0], sess[1] = 0, at  # the marker keeps the end time
        state.set(sid, sess)
        STATS["live"] -= 1
        return {
            "type": "revocation",
            "session_id": sid,
            "user_id": e["user_id"],
            "tenant": e["tenant"],
            "reason": reason,
            "effective_at": iso(at),
            "emitted_at": iso(now),
            "roles": sess[4],
            "permissions": sess[5],
            "policy_version": self.version,
        }


def main() -> None:
    mode, servers, group, input_name, output_name, policy_path = sys.argv[1:7]
    total = int(sys.argv[7]) if mode == "drain" else 0
    with open(policy_path, "rb") as f:
        policy = orjson.loads(f.read())
    app = Application(
        broker_address=servers,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=tempfile.mkdtemp(prefix="quix-peer-"),
        loglevel="WARNING",
    )
    source = app.topic(input_name, key_deserializer="str", value_deserializer="json")
    sink = app.topic(output_name, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.apply(Enforce(policy, total, app), stateful=True, expand=True)
    sdf.to_topic(sink, key=lambda rev: rev["session_id"])
    if mode != "drain":
        print("running", flush=True)
    app.run()
    if mode == "drain":
        # Up to the end of the final checkpoint (state flushed, changelog produced, offsets
        # committed), which app.run() does on stop: a commit happens only every 5 s, so the
        # last event alone would leave out up to 5 s of committing work.
        seconds = time.perf_counter() - STATS["t0"]
        result = {
            "events": STATS["events"],
            "seconds": seconds,
            "rate": STATS["events"] / seconds,
            "rate_to_last_event": STATS["events"] / (STATS["t1"] - STATS["t0"]),
            "live_sessions": STATS["live"],
            "rss_empty": STATS["rss_empty"],
            "rss_full": rss_bytes(),
        }
        os.write(1, orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
