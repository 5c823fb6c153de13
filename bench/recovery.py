"""Recovery: SIGKILL an enforcer holding N live sessions, start a new one; seconds until it is
enforcing again, then the verify audit of every session of the run.
Usage: python -m bench.recovery SERVERS PREFIX SESSIONS IDLE_SECONDS [snapshot|full]

Every session idles out IDLE_SECONDS after its login: long enough for the first enforcer to
take in every login and be killed, and for its successor to restore, before deadlines come.
``snapshot`` (the default): both enforcers keep local state (SESSIONWARDEN_STATE_DIR), and the
kill comes once every partition's snapshot covers its whole changelog, so the restore loads
the snapshots; ``full``: no local state, the restore reads the changelog from offset 0."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.common import child_settings, produce, producer
from sessionwarden.audit.verify import audit
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.enforcer.engine import snapshot
from sessionwarden.policy import load_policy
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.events import login_doc
from sessionwarden.testing.services import EnforcerProcess
from sessionwarden.testing.waiting import wait_until

POLICY_TEXT = """name = "bench-recovery"
[defaults]
idle = "{idle}s"
absolute = "12h"
"""


def _lag(admin: AdminClient, servers: str, group: str, topic: str, partitions: int) -> int:
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c = Consumer({"bootstrap.servers": servers, "group.id": group, "log_level": 3})
    committed = c.committed(tps, 10)
    lag = 0
    for tp in committed:
        _, high = c.get_watermark_offsets(tp, timeout=10)
        lag += high - max(tp.offset, 0)
    c.close()
    return lag


def _assigned_at(proc: EnforcerProcess) -> tuple[float, dict[str, Any]] | None:
    for line in proc.lines:
        if "partitions assigned and restored" in line:
            doc = orjson.loads(line)
            if doc.get("restoring"):  # partitions restore one by one: wait for the last
                continue
            ts = datetime.fromisoformat(doc["ts"]).timestamp()
            return ts, doc
    return None


def _snapshots_cover_changelog(servers: str, topic: str, state: Path, partitions: int) -> bool:
    """Every partition's snapshot is at the changelog's end: the offset after the last record,
    which the commit marker that follows it takes (nothing left to replay)."""
    c = Consumer({"bootstrap.servers": servers, "group.id": "bench-recovery-probe", "log_level": 3})
    try:
        for p in range(partitions):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            path = snapshot.path_for(state, topic, p)
            if high and (not path.exists() or snapshot.read_header(path).offset + 1 < high):
                return False
        return True
    finally:
        c.close()


def _snapshot_use(proc: EnforcerProcess) -> dict[str, Any]:
    """What the restore's log lines say about the snapshots it loaded."""
    docs = [orjson.loads(line) for line in proc.lines if "restoring the partition from" in line]
    used = [d for d in docs if d["msg"] == "restoring the partition from its snapshot"]
    return {
        "snapshot_partitions": len(used),
        "full_restore_partitions": len(docs) - len(used),
        "snapshot_age_s": max((d["snapshot_age_s"] for d in used), default=None),
        "snapshot_bytes": sum(d["snapshot_bytes"] for d in used),
        "fallback_reasons": sorted({d["reason"] for d in docs if "reason" in d}),
    }


def _alive(proc: EnforcerProcess) -> bool:
    if proc.proc.poll() is not None:
        raise AssertionError(f"the enforcer exited ({proc.proc.returncode}):\n{proc.log()}")
    return True


def main() -> None:
    servers, prefix, sessions, idle_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    use_snapshots = (sys.argv[5] if len(sys.argv) > 5 else "snapshot") == "snapshot"
    state = Path(tempfile.mkdtemp()) / "state"
    local = (
        {"SESSIONWARDEN_STATE_DIR": str(state), "SESSIONWARDEN_STATE_SNAPSHOT_INTERVAL_S": "5"}
        if use_snapshots
        else {}
    )
    policy_file = Path(tempfile.mkdtemp()) / "recovery.toml"
    policy_file.write_text(POLICY_TEXT.format(idle=float(idle_s)))
    settings = child_settings(servers, prefix)
    idle = load_policy(policy_file).timeouts_for("customer", "low").idle
    admin = AdminClient({"bootstrap.servers": servers})
    first = EnforcerProcess(settings, policy=policy_file, SESSIONWARDEN_LOG_LEVEL="INFO", **local)
    first.wait_assigned()
    p = producer(settings)
    truth: dict[str, Any] = {"run_id": prefix, "sessions": {}, "ended_session_used": []}
    fill_started = time.time()
    for i in range(sessions):
        now = time.time()
        sid = f"{prefix}s{i}"
        doc = login_doc(sid, f"u{i}", now, risk="low")
        produce(p, settings.topics.input, encode_dict(doc), doc["user_id"].encode())
        at = datetime.fromisoformat(doc["occurred_at"]).timestamp() + idle
        truth["sessions"][sid] = {
            "user_id": doc["user_id"],
            "kind": "idle",
            "reason": "idle_timeout",
            "at": at,
        }
    p.flush(120)
    fill_s = time.time() - fill_started
    wait_until(
        lambda: _lag(admin, servers, settings.enforcer.group_id, settings.topics.input, 6) == 0,
        600,
        "the first enforcer to take in every login",
    )
    drained_at = time.time()
    if use_snapshots:
        wait_until(
            lambda: _snapshots_cover_changelog(servers, settings.topics.enforcer_state, state, 6),
            300,
            "snapshots covering the whole changelog",
        )
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(30)
    killed_at = time.time()
    second = EnforcerProcess(settings, policy=policy_file, SESSIONWARDEN_LOG_LEVEL="INFO", **local)
    revocations = Collector(servers, settings.topics.revocations)
    try:
        ready_at, doc = wait_until(
            lambda: _alive(second) and _assigned_at(second), 600, "the new enforcer to restore"
        )
        last_deadline = max(s["at"] for s in truth["sessions"].values())
        wait_until(
            lambda: _alive(second) and len(revocations.records) >= sessions,
            last_deadline - time.time() + 600,
            "every revocation",
        )
        time.sleep(2)  # a duplicate would show up within this window
        docs = revocations.docs()
    except AssertionError:
        Path("bench/results").mkdir(parents=True, exist_ok=True)
        Path("bench/results/recovery-enforcer.log").write_text("\n".join(second.lines))
        raise
    finally:
        revocations.close()
        second.stop()
        shutil.rmtree(state.parent, ignore_errors=True)  # the snapshots hold the run's sessions
    report = audit(truth, docs, [], tolerance=2.0)
    print(
        orjson.dumps(
            {
                "sessions": sessions,
                "fill_s": fill_s,
                "first_drain_s": drained_at - fill_started,
                "recovery_s": ready_at - killed_at,
                "restore_s": doc.get("restore_s"),
                "local_state": use_snapshots,
                **_snapshot_use(second),
                "live_sessions_restored": doc.get("live_sessions"),
                "verify": report.to_json() | {"problems": report.problems[:10]},
            }
        ).decode(),
        flush=True,
    )


if __name__ == "__main__":
    main()
