"""Mass revocation: every session of one tenant with N live sessions ended by one operator
command (`sessionwarden revoke --all-users`), on the real broker with the enforcer, the
PostgreSQL sink (fsync on) and a service's revocation listener on this machine.

Measured: command written -> every partition's answer read (the answer commits in the
transaction of that partition's revocations, so this is "all revocations committed"); then,
for a sample of the tenant's sessions, how long after that the listener (API layer) and the
database (the sink and the row-level guard) refuse each one.
Usage: python -m bench.mass_revoke SESSIONS [PARTITIONS]"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from bench.common import REPO, bench_topics, producer
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.kafka.offsets import GroupOffsets, group_lag
from sessionwarden.kafka.producing import produce_waiting as produce
from sessionwarden.kafka.security import client_config
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.sdk.pg_guard import is_refused, session_transaction
from sessionwarden.testing.events import login_doc
from sessionwarden.testing.pg_cluster import TempCluster
from sessionwarden.testing.pg_sandbox import Sandbox
from sessionwarden.testing.services import EnforcerProcess, SinkProcess, service_env
from sessionwarden.testing.waiting import wait_until

POLICY = REPO / "streams/sessionwarden/policy/shipped/default.toml"  # nothing times out
TENANT = "mass"
SAMPLE = 50
TARGET_COMMIT_S = 5.0
TARGET_REFUSAL_S = 1.0


def fill(settings: Settings, sessions: int) -> list[str]:
    """One live session per user of the tenant, plus one of another tenant (must survive)."""
    rng = random.Random(7)
    p = producer(settings)
    t0 = time.time() - 30
    sids = [f"m{i}-{rng.getrandbits(40):010x}" for i in range(sessions)]
    for i, sid in enumerate(sids):
        doc = login_doc(sid, f"u{i}", t0, tenant=TENANT, permissions=["docs:read"])
        produce(p, settings.topics.input, encode_dict(doc), doc["user_id"].encode())
    other = login_doc("survivor", "u0", t0, tenant="other")
    produce(p, settings.topics.input, encode_dict(other), b"u0")
    p.flush(120)
    return sids


def caught_up(settings: Settings) -> bool:
    admin = AdminClient(client_config(settings.kafka))
    offsets = GroupOffsets(client_config(settings.kafka), settings.enforcer.group_id)
    try:
        tps = [TopicPartition(settings.topics.input, p) for p in range(settings.kafka.partitions)]
        return group_lag(admin, offsets, tps) == 0
    finally:
        offsets.close()


def db_refused(app: psycopg.Connection[Any], sid: str) -> bool:
    try:
        with session_transaction(app, TENANT, sid) as cur:
            cur.execute("SELECT 1")
    except psycopg.Error as exc:
        if is_refused(exc):
            return True
        raise
    return False


def refusals(check: Any, sample: list[str], since: float, timeout: float) -> dict[str, float]:
    """Seconds after ``since`` at which each sampled session was first seen refused."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(sample) and time.monotonic() < deadline:
        for sid in sample:
            if sid not in seen and check(sid):
                seen[sid] = time.monotonic() - since
        time.sleep(0.005)
    return seen


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50_s": ordered[len(ordered) // 2],
        "max_s": ordered[-1],
    }


def run(sessions: int, partitions: int) -> dict[str, Any]:
    with (
        bench_topics("revoke", partitions=partitions, policy_file=POLICY) as settings,
        TempCluster(durable=True) as cluster,
    ):
        box = Sandbox.create(cluster.dsn(), f"sw_mass_{uuid.uuid4().hex[:8]}")
        try:
            sids = fill(settings, sessions)
            sample = random.Random(3).sample(sids, min(SAMPLE, len(sids)))
            listener = RevocationListener(
                settings.kafka.bootstrap_servers, settings.topics.revocations, max_lifetime_s=3600
            )
            with (
                EnforcerProcess(settings, policy=Path(POLICY)) as enforcer,
                SinkProcess(settings, box.sink_dsn, Path(POLICY)) as sink,
                psycopg.connect(box.app_dsn, autocommit=True) as app,
            ):
                enforcer.wait_assigned(120)
                sink.wait_assigned(120)
                wait_until(lambda: caught_up(settings), 600, "the enforcer to apply the logins")
                listener.start()
                assert listener.wait_ready(60), "the listener did not catch up"
                assert not any(listener.is_revoked(TENANT, sid) for sid in sample)
                assert not any(db_refused(app, sid) for sid in sample)
                # As an operator would: the CLI in a process of its own.
                cli = subprocess.run(
                    [sys.executable, "-m", "sessionwarden", "revoke", "--tenant", TENANT,
                     "--all-users", "--reason-admin", "mass revocation bench", "--timeout", "120"],
                    cwd=REPO,
                    env={**service_env(settings, Path(POLICY)), "PYTHONPATH": "streams:."},
                    capture_output=True,
                    text=True,
                    timeout=300,
                )  # fmt: skip
                since = time.monotonic()
                api = refusals(lambda sid: listener.is_revoked(TENANT, sid), sample, since, 60)
                db = refusals(lambda sid: db_refused(app, sid), sample, since, 120)
                survivor_alive = not listener.is_revoked("other", "survivor")
            listener.close()
        finally:
            box.drop()
    status = cli.returncode
    found = re.search(r"revoked (\d+) sessions.* committed in ([0-9.]+) s", cli.stdout)
    revoked, committed_s = (int(found[1]), float(found[2])) if found else (0, float("nan"))
    return {
        "sessions": sessions,
        "partitions": partitions,
        "status": status,
        "revoked": revoked,
        "cli": (cli.stdout + cli.stderr).strip()[-500:],
        "command_to_committed_s": committed_s,
        "api_refusal_after_commit": summary(list(api.values())),
        "db_refusal_after_commit": summary(list(db.values())),
        "sample": len(sample),
        "other_tenant_untouched": survivor_alive,
    }


def render_markdown(r: dict[str, Any]) -> list[str]:
    ok = r["command_to_committed_s"] <= TARGET_COMMIT_S
    api, db = r["api_refusal_after_commit"], r["db_refusal_after_commit"]
    return [
        "",
        "## Mass revocation (operator command, one tenant)",
        "",
        f"`sessionwarden revoke --all-users` on a tenant with {r['sessions']:,} live sessions "
        f"over {r['partitions']} partitions: {r['revoked']:,} revoked, every partition's "
        f"revocations committed {r['command_to_committed_s']:.2f} s after the command was "
        f"written (target <= {TARGET_COMMIT_S:g} s: {'met' if ok else 'missed'}). Refused after "
        f"that commit, over {r['sample']} sampled sessions: by the listener (API layer) p50 "
        f"{api.get('p50_s', float('nan')):.3f} s, max {api.get('max_s', float('nan')):.3f} s; "
        f"by PostgreSQL (sink and guard) p50 {db.get('p50_s', float('nan')):.3f} s, max "
        f"{db.get('max_s', float('nan')):.3f} s (target <= {TARGET_REFUSAL_S:g} s).",
    ]


def main() -> None:
    sessions = int(sys.argv[1])
    partitions = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    print(orjson.dumps(run(sessions, partitions)).decode(), flush=True)


if __name__ == "__main__":
    main()
