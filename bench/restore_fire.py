"""Deadlines of owned partitions during another partition's restore.

Usage: python -m bench.restore_fire SERVERS PREFIX SESSIONS

Enforcer A owns every partition and takes in SESSIONS long-lived logins; enforcer B joins,
takes half the partitions and restores them; B is killed, so A is handed B's partitions and
restores their share of the sessions while it keeps its own. Throughout, short-lived probe
sessions (idle 2 s) log in on A's own partitions; the fire delay (revocation seen - deadline)
of every probe whose deadline falls inside A's restore is what this measures.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka.admin import AdminClient

from bench.common import produce, producer
from bench.recovery import _lag
from sessionwarden.config.settings import load_settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.enforcer.engine.forward import murmur2_partition
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.events import login_doc, parse_ts
from sessionwarden.testing.services import EnforcerProcess
from sessionwarden.testing.waiting import wait_until

PARTITIONS = 6
PROBE_EVERY_S = 0.1
POLICY_TEXT = """name = "bench-restore-fire"
[defaults]
idle = "12h"
absolute = "12h"

[risk_profiles.high]
idle = "2s"
absolute = "12h"
"""


SETTLE_S = 3.0
"""B's assignment counts as settled once it has not changed for this long (cooperative
rebalancing hands partitions over in more than one round)."""

Log = list[dict[str, Any]]


def _ts(doc: dict[str, Any]) -> float:
    return parse_ts(doc["ts"])


def owned(messages: Log) -> tuple[set[int], bool, float]:
    """From an enforcer's log: the partitions it owns, restored; whether any is still
    restoring; and when its assignment last changed."""
    have: set[int] = set()
    restoring: set[int] = set()
    changed = 0.0
    for doc in messages:
        parts = set(doc.get("partitions") or [])
        if doc.get("msg") == "restoring newly assigned partitions":
            restoring |= parts
        elif doc.get("msg") == "partitions assigned and restored":
            have |= parts
            restoring = set(doc.get("restoring") or [])
        elif doc.get("msg") == "partitions revoked":
            have -= parts
            restoring -= parts
        else:
            continue
        changed = _ts(doc)
    return have, bool(restoring), changed


def restore_of(messages: Log, after: float, moved: set[int]) -> dict[str, Any] | None:
    """A's restore of ``moved`` after ``after``: when it began and ended, its records; None
    until every moved partition is restored. Refuses a restore of other partitions than
    ``moved``: the probes would then sit on partitions that were restoring too."""
    began: float | None = None
    asked: set[int] = set()
    done: set[int] = set()
    records = 0
    for doc in messages:
        if _ts(doc) < after:
            continue
        if doc.get("msg") == "restoring newly assigned partitions":
            began = _ts(doc) if began is None else began
            asked |= set(doc["partitions"])
        elif doc.get("msg") == "partitions assigned and restored" and began is not None:
            done |= set(doc["partitions"])
            records += doc.get("restored_records") or 0
            if done >= moved:
                if asked != moved:
                    raise SystemExit(f"A restored {sorted(asked)}, B had owned {sorted(moved)}")
                return {"t0": began, "t1": _ts(doc), "records": records}
    return None


def _settled(b: EnforcerProcess) -> set[int] | None:
    have, restoring, changed = owned(b.messages())
    if have and not restoring and time.time() - changed >= SETTLE_S:
        return have
    return None


def _probe_users(partitions: set[int]) -> list[str]:
    users = [f"probe-{n}" for n in range(5000)]
    return [u for u in users if murmur2_partition(u.encode(), PARTITIONS) in partitions]


def main() -> None:
    servers, prefix, sessions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    policy = Path(tempfile.mkdtemp()) / "restore-fire.toml"
    policy.write_text(POLICY_TEXT)
    settings = load_settings(
        bootstrap_servers=servers,
        topic_prefix=prefix,
        partitions=PARTITIONS,
        group_id=f"{prefix}enforcer",
    )
    a = EnforcerProcess(settings, instance_id="a", policy=policy)
    b: EnforcerProcess | None = None
    revocations = Collector(servers, settings.topics.revocations)
    stop = threading.Event()
    try:
        a.wait_assigned(120)
        p = producer(settings)
        for i in range(sessions):
            doc = login_doc(f"{prefix}s{i}", f"u{i}", time.time(), risk="low")
            produce(p, settings.topics.input, encode_dict(doc), doc["user_id"].encode())
        p.flush(120)
        admin = AdminClient({"bootstrap.servers": servers})
        wait_until(
            lambda: (
                _lag(admin, servers, settings.enforcer.group_id, settings.topics.input, PARTITIONS)
                == 0
            ),
            600,
            "A to take in every login",
        )
        b = EnforcerProcess(settings, instance_id="b", policy=policy)
        moved = wait_until(lambda: _settled(b), 600, "B to restore its share and keep it")
        own = set(range(PARTITIONS)) - moved
        users = _probe_users(own)
        probes: dict[str, float] = {}

        def probe_loop() -> None:
            pp = producer(settings)
            n = 0
            while not stop.is_set():
                doc = login_doc(
                    f"{prefix}probe{n}", users[n % len(users)], time.time(), risk="high"
                )
                produce(pp, settings.topics.input, encode_dict(doc), doc["user_id"].encode())
                pp.flush(10)
                probes[doc["session_id"]] = parse_ts(doc["occurred_at"]) + 2.0
                n += 1
                stop.wait(PROBE_EVERY_S)

        thread = threading.Thread(target=probe_loop, daemon=True)
        thread.start()
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(30)
        killed = time.time()
        restore = wait_until(
            lambda: restore_of(a.messages(), killed, moved), 600, "A to restore B's partitions"
        )
        time.sleep(3)  # probes whose deadline is inside the restore have fired by now
        stop.set()
        thread.join(15)
        t0, t1 = restore["t0"], restore["t1"]
        inside = {sid: at for sid, at in probes.items() if t0 <= at <= t1}
        wait_until(
            lambda: all(revocations.timed(session_id=s) for s in inside), 60, "probe revocations"
        )
        delays = sorted(revocations.timed(session_id=s)[0][0] - at for s, at in inside.items())
    finally:
        stop.set()
        revocations.close()
        if b is not None:
            b.stop()
        a.stop()

    def pct(q: float) -> float:
        return delays[min(len(delays) - 1, int(q * len(delays)))] * 1000 if delays else 0.0

    print(
        orjson.dumps(
            {
                "sessions": sessions,
                "restored_partitions": sorted(moved),
                "restore_s": t1 - t0,
                "restored_records": restore["records"],
                "probes_inside_restore": len(delays),
                "fire_delay_p50_ms": pct(0.5),
                "fire_delay_p99_ms": pct(0.99),
                "fire_delay_max_ms": delays[-1] * 1000 if delays else 0.0,
            }
        ).decode(),
        flush=True,
    )


if __name__ == "__main__":
    main()
