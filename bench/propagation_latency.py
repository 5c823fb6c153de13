"""Propagation latency: from a session's idle deadline to ``is_revoked`` in another process.

    .venv/bin/python -m bench.propagation_latency [--sessions 200] [--spread 10] [--idle 3]

A real enforcer runs as ``sessionwarden enforce`` in a subprocess; a RevocationListener runs in a
second subprocess and reports, for each session, the wall-clock moment its revocation entered
the set (the callback runs right after the insert, so that is when ``is_revoked`` turns true).
Logins are published one by one, evenly spread over ``--spread`` seconds, so the idle
deadlines are staggered and no two fire in the same batch. Latency = that moment - (login time
+ idle timeout), split at the revocation's ``emitted_at`` (the enforcer's batch time) into
firing and delivery. A second phase commits revocations directly, one transaction each, to
measure the listener's own share (commit -> is_revoked). Everything runs on one host, so the
processes share the clock.

Human-readable lines go to stderr; the result is one JSON line on stdout. The benchmark makes
its own prefixed topics and deletes them, and stops both child processes, even on failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from bench.common import bench_topics
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.ops.stats import percentiles
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.children import Child
from sessionwarden.testing.events import login_doc

REPO = Path(__file__).resolve().parent.parent
POLICY = """name = "bench-propagation"
clock_skew_tolerance = "30s"
[defaults]
idle = "{idle}s"
absolute = "1h"
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def enforcer(settings: Settings) -> Child:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SESSIONWARDEN_TOPIC_PREFIX": settings.topics.prefix,
        "SESSIONWARDEN_PARTITIONS": str(settings.kafka.partitions),
        "SESSIONWARDEN_GROUP_ID": settings.enforcer.group_id,
        "SESSIONWARDEN_INSTANCE_ID": "bench",
        "SESSIONWARDEN_POLICY_FILE": str(settings.policy_file),
        "SESSIONWARDEN_TRANSACTION_TIMEOUT_MS": "5000",
        "SESSIONWARDEN_SESSION_TIMEOUT_MS": "6000",
        "SESSIONWARDEN_LOG_LEVEL": "INFO",
    }
    args = [sys.executable, "-m", "sessionwarden", "enforce"]
    return Child(args, env, name="enforcer", cwd=REPO, watch="stderr", stdin=True)


def listener_child(settings: Settings) -> Child:
    args = [sys.executable, "-m", "bench.propagation_latency", "--role", "listener"]
    args += ["--servers", settings.kafka.bootstrap_servers, "--topic", settings.topics.revocations]
    # It runs until its input closes (``Child.stop`` closes it first).
    return Child(args, name="listener", cwd=REPO, watch="stdout", stdin=True)


def run_listener(servers: str, topic: str) -> None:
    """Child role: print one JSON line per revocation applied after the bootstrap."""
    from sessionwarden.sdk.listener import RevocationListener

    lock = threading.Lock()

    def seen(record: Any) -> None:
        line = orjson.dumps(
            {
                "session_id": record.session_id,
                "seen": time.time(),
                "effective_at": record.effective_at.timestamp(),
                "emitted_at": record.emitted_at.timestamp(),
            }
        )
        with lock:
            sys.stdout.write(line.decode() + "\n")
            sys.stdout.flush()

    listener = RevocationListener(servers, topic, max_lifetime_s=3600, on_revocation=seen)
    with listener:
        if not listener.wait_ready(60):
            raise SystemExit("listener not ready after 60s")
        print("ready", flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or terminates us)


def publish_logins(settings: Settings, count: int, spread: float) -> dict[str, float]:
    """Logins evenly spread over ``spread`` seconds; returns each session's login time."""
    logged_in: dict[str, float] = {}
    start = time.time() + 0.5
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as publisher:
        for n in range(count):
            due = start + n * spread / count
            time.sleep(max(0.0, due - time.time()))
            now = time.time()
            sid = f"bench-{n}-{uuid.uuid4().hex[:8]}"
            publisher.publish(login(sid, f"user-{n}", now))
            publisher.flush()
            logged_in[sid] = now
    return logged_in


def login(sid: str, user: str, t: float) -> dict[str, Any]:
    return login_doc(sid, user, t, tenant="bench")


def collect(child: Child, logged_in: dict[str, float], timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: dict[str, dict[str, Any]] = {}
    while len(found) < len(logged_in) and time.monotonic() < deadline:
        for line in list(child.lines):
            if line.startswith("{"):
                doc = orjson.loads(line)
                if doc["session_id"] in logged_in:
                    found[doc["session_id"]] = doc
        time.sleep(0.1)
    return found


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        policy_file = Path(tmp) / "policy.toml"
        policy_file.write_text(POLICY.format(idle=args.idle))
        with bench_topics("propagation", args.partitions, args.servers, policy_file) as settings:
            children: list[Child] = []
            try:
                children.append(enforcer(settings))
                children[0].wait_for("partitions assigned", 120)
                children.append(listener_child(settings))
                children[1].wait_for("ready", 120)
                say(f"publishing {args.sessions} logins over {args.spread:g}s (idle {args.idle}s)")
                logged_in = publish_logins(settings, args.sessions, args.spread)
                found = collect(children[1], logged_in, args.idle + 60)
                say(f"committing {args.sessions} revocations directly (listener share alone)")
                committed = commit_revocations(settings, args.sessions, args.spread)
                direct = collect(children[1], committed, 60)
            finally:
                for child in reversed(children):
                    child.stop()
    result = summarise(args, logged_in, found)
    listener_ms = [
        (direct[sid]["seen"] - t) * 1000 for sid, t in committed.items() if sid in direct
    ]
    result.update(listener_share(listener_ms, len(committed)))
    return result


def commit_revocations(settings: Settings, count: int, spread: float) -> dict[str, float]:
    """One transaction per revocation, as the enforcer commits them; returns, per session, the
    moment just before ``commit_transaction`` was called."""
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "transactional.id": f"{settings.topics.prefix}bench-direct",
            "partitioner": "murmur2_random",
            "linger.ms": 2,
        }
    )
    producer.init_transactions(30)
    committing: dict[str, float] = {}
    for n in range(count):
        sid = f"direct-{n}-{uuid.uuid4().hex[:8]}"
        stamp = datetime.now(UTC)
        record = Revocation(
            revocation_id=uuid.uuid4(),
            session_id=sid,
            user_id=f"user-{n}",
            tenant="bench",
            reason="logout",
            effective_at=stamp,
            emitted_at=stamp,
            roles=[],
            permissions=[],
            policy_version="bench",
        )
        producer.begin_transaction()
        producer.produce(settings.topics.revocations, encode(record), sid.encode())
        committing[sid] = time.time()
        producer.commit_transaction(30)
        time.sleep(spread / count)
    return committing


def listener_share(values: list[float], expected: int) -> dict[str, Any]:
    """Commit -> is_revoked for revocations committed directly: the listener's own share."""
    if not values:
        return {"listener_missing": expected}
    shares: dict[str, Any] = {"listener_missing": expected - len(values)}
    for pct, value in zip((50, 90, 99), percentiles(values, 50, 90, 99), strict=True):
        shares[f"listener_p{pct}_ms"] = round(value, 1)
    shares["listener_max_ms"] = round(max(values), 1)
    return shares


def summarise(
    args: argparse.Namespace, logged_in: dict[str, float], found: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Total = deadline -> is_revoked; split into firing (deadline -> the enforcer's batch
    time, stamped as emitted_at) and delivery (emitted_at -> is_revoked: commit and fetch)."""
    seen = [(found[sid], t + args.idle) for sid, t in logged_in.items() if sid in found]
    if not seen:
        raise SystemExit("no revocation reached the listener")
    total = [(doc["seen"] - deadline) * 1000 for doc, deadline in seen]
    firing = [(doc["emitted_at"] - deadline) * 1000 for doc, deadline in seen]
    delivery = [(doc["seen"] - doc["emitted_at"]) * 1000 for doc, _ in seen]
    error = max(abs(doc["effective_at"] - deadline) for doc, deadline in seen)
    result: dict[str, Any] = {
        "bench": "propagation_latency",
        "sessions": args.sessions,
        "observed": len(seen),
        "missing": args.sessions - len(seen),
        "partitions": args.partitions,
        "idle_s": args.idle,
        "spread_s": args.spread,
    }
    for name, values in (("", total), ("fire_", firing), ("deliver_", delivery)):
        for pct, value in zip((50, 90, 99), percentiles(values, 50, 90, 99), strict=True):
            result[f"{name}p{pct}_ms"] = round(value, 1)
        result[f"{name}max_ms"] = round(max(values), 1)
    result["min_ms"] = round(min(total), 1)
    result["early"] = sum(1 for x in total if x < 0)
    result["effective_at_max_error_ms"] = round(error * 1000, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["parent", "listener"], default="parent")
    parser.add_argument(
        "--servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--topic", help="listener role: the revocation topic")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which to log in")
    parser.add_argument("--idle", type=int, default=3, help="idle timeout in seconds")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    if args.role == "listener":
        run_listener(args.servers, args.topic)
        return
    result = measure(args)
    say(
        f"deadline -> is_revoked over {result['observed']}/{args.sessions} sessions: "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms; "
        f"of which commit -> is_revoked (listener alone): p50 {result.get('listener_p50_ms')} ms, "
        f"p99 {result.get('listener_p99_ms')} ms"
    )
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
