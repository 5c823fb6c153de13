"""Mass revocation: every session of one tenant with N live sessions ended by one operator
command (`sessionwarden revoke --all-users`), on the real broker with the enforcer, the
PostgreSQL sink (fsync on), a service's revocation listener and the gate behind Debian's nginx
on this machine.

Measured: command written -> the revocation committed on every partition (the answer that
commits with the tenant record, or with a small tenant's revocations), and -> every session's
own record committed; then, for a sample of the tenant's sessions, how long after that commit
the listener (API layer), the database (the sink and the row-level guard) and nginx
(``auth_request`` to ``sessionwarden gate``) refuse each one.
Usage: python -m bench.mass_revoke SESSIONS [PARTITIONS]"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import orjson
import psycopg
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from bench.common import REPO, bench_topics, producer
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.gate.service import start_gate
from sessionwarden.kafka.offsets import GroupOffsets, group_lag
from sessionwarden.kafka.producing import produce_waiting as produce
from sessionwarden.kafka.security import client_config
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.testing.events import login_doc
from sessionwarden.testing.nginx import Nginx, NginxUnavailable
from sessionwarden.testing.pg_cluster import TempCluster
from sessionwarden.testing.pg_sandbox import Sandbox, refused
from sessionwarden.testing.services import EnforcerProcess, SinkProcess, service_env
from sessionwarden.testing.waiting import wait_until

POLICY = REPO / "streams/sessionwarden/policy/shipped/default.toml"  # nothing times out
TENANT = "mass"
SAMPLE = 50
TARGET_COMMIT_S = 5.0
TARGET_REFUSAL_S = 1.0
COOKIE = "sessionwarden_session"  # the gate's default session cookie


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


def revoke_command(settings: Settings) -> subprocess.Popen[str]:
    """As an operator would: the CLI in a process of its own (its lines read as they come)."""
    return subprocess.Popen(
        [sys.executable, "-m", "sessionwarden", "revoke", "--tenant", TENANT, "--all-users",
         "--reason-admin", "mass revocation bench", "--timeout", "120"],
        cwd=REPO,
        env={**service_env(settings, Path(POLICY)), "PYTHONPATH": "streams:."},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def run(sessions: int, partitions: int) -> dict[str, Any]:
    with (
        bench_topics("revoke", partitions=partitions, policy_file=POLICY) as topics,
        TempCluster(durable=True) as cluster,
        tempfile.TemporaryDirectory() as tmp,
    ):
        gate_settings = topics.gate.model_copy(update={"port": 0, "tenants": ""})
        settings = topics.model_copy(update={"gate": gate_settings})
        box = Sandbox.create(cluster.dsn(), f"sw_mass_{uuid.uuid4().hex[:8]}")
        try:
            sids = fill(settings, sessions)
            sample = random.Random(3).sample(sids, min(SAMPLE, len(sids)))
            listener = RevocationListener(
                settings.kafka.bootstrap_servers, settings.topics.revocations, max_lifetime_s=3600
            )
            # The gate's own listener, as `sessionwarden gate` runs one.
            gate_listener = RevocationListener.from_settings(settings, staleness_budget_s=10.0)
            with (
                EnforcerProcess(settings, policy=Path(POLICY)) as enforcer,
                SinkProcess(settings, box.sink_dsn, Path(POLICY)) as sink,
                psycopg.connect(box.app_dsn, autocommit=True) as app,
            ):
                enforcer.wait_assigned(120)
                sink.wait_assigned(120)

                def in_db(sid: str) -> bool:
                    return refused(app, TENANT, sid, "SELECT 1")

                wait_until(lambda: caught_up(settings), 600, "the enforcer to apply the logins")
                listener.start()
                gate_listener.start()
                assert listener.wait_ready(60), "the listener did not catch up"
                assert gate_listener.wait_ready(60), "the gate's listener did not catch up"
                with GateBehindNginx(settings, gate_listener, Path(tmp)) as gw:
                    assert not any(listener.is_revoked(TENANT, sid) for sid in sample)
                    assert not any(in_db(sid) for sid in sample)
                    assert not any(gw.refused(sid) for sid in sample)
                    cli = revoke_command(settings)
                    assert cli.stdout is not None
                    first = cli.stdout.readline()  # the commit: held, or every session ended
                    since = time.monotonic()
                    api = refusals(lambda sid: listener.is_revoked(TENANT, sid), sample, since, 60)
                    db = refusals(in_db, sample, since, 120)
                    gate = refusals(gw.refused, sample, since, 60) if gw.available else {}
                    out, err = cli.communicate(timeout=300)
                    survivor_alive = not listener.is_revoked("other", "survivor")
                    survivor_gate = not gw.available or not gw.refused("survivor", "other")
            listener.close()
            gate_listener.close()
        finally:
            box.drop()
    text = first + out
    found = re.search(r"committed in ([0-9.]+) s", text)
    every = re.search(r"every session's own record by ([0-9.]+) s", text)
    revoked = re.search(r"revoked (\d+) sessions", text)
    committed_s = float(found[1]) if found else float("nan")
    return {
        "sessions": sessions,
        "partitions": partitions,
        "status": cli.returncode,
        "revoked": int(revoked[1]) if revoked else 0,
        "cli": (text + err).strip()[-600:],
        "command_to_committed_s": committed_s,
        "command_to_every_session_record_s": float(every[1]) if every else committed_s,
        "api_refusal_after_commit": summary(list(api.values())),
        "db_refusal_after_commit": summary(list(db.values())),
        "gateway_refusal_after_commit": (
            summary(list(gate.values())) if gw.available else {"skipped": gw.skipped}
        ),
        "sample": len(sample),
        "other_tenant_untouched": survivor_alive and survivor_gate,
    }


class GateBehindNginx:
    """``sessionwarden gate`` on ``listener`` behind Debian's nginx (``auth_request``); without
    nginx on this machine, ``available`` is False and ``skipped`` says why."""

    def __init__(self, settings: Settings, listener: RevocationListener, tmp: Path) -> None:
        self._gate = start_gate(settings, listener)
        self._nginx: Nginx | None = None
        self._http: HTTPConnection | None = None
        self.skipped = ""
        try:
            self._nginx = Nginx(tmp / "nginx", self._gate.port)
            self._http = HTTPConnection("127.0.0.1", self._nginx.port, timeout=5)
        except NginxUnavailable as exc:
            self.skipped = str(exc)

    @property
    def available(self) -> bool:
        return self._http is not None

    def refused(self, sid: str, tenant: str = TENANT) -> bool:
        """nginx refuses the session (401: the gate answered revoked)."""
        assert self._http is not None
        self._http.request("GET", "/", headers={"Cookie": f"{COOKIE}={sid}", "X-Tenant": tenant})
        response = self._http.getresponse()
        response.read()
        return response.status == 401

    def __enter__(self) -> GateBehindNginx:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._http is not None:
            self._http.close()
        if self._nginx is not None:
            self._nginx.close()
        self._gate.close()


def _layer_text(found: dict[str, Any]) -> str:
    if not found:
        return "not measured"
    if "skipped" in found:
        return f"not measured ({found['skipped']})"
    nan = float("nan")
    return (
        f"p50 {found.get('p50_s', nan) * 1000:.1f} ms, max {found.get('max_s', nan) * 1000:.1f} ms"
    )


def render_markdown(r: dict[str, Any]) -> list[str]:
    ok = r["command_to_committed_s"] <= TARGET_COMMIT_S
    layers = [
        ("the listener (API layer)", r["api_refusal_after_commit"]),
        ("PostgreSQL (sink and guard)", r["db_refusal_after_commit"]),
        ("nginx and the gate (gateway layer)", r.get("gateway_refusal_after_commit", {})),
    ]
    by_layer = "; ".join(f"by {name} {_layer_text(found)}" for name, found in layers)
    return [
        "",
        "## Mass revocation (operator command, one tenant)",
        "",
        f"`sessionwarden revoke --all-users` on a tenant with {r['sessions']:,} live sessions "
        f"over {r['partitions']} partitions: {r['revoked']:,} revoked; the revocation committed "
        f"on every partition {r['command_to_committed_s']:.2f} s after the command was written "
        f"(target <= {TARGET_COMMIT_S:g} s: {'met' if ok else 'missed'}), every session's own "
        f"record {r.get('command_to_every_session_record_s', r['command_to_committed_s']):.2f} s "
        "after it. "
        f"Refused after that commit, over {r['sample']} sampled sessions: {by_layer} "
        f"(target <= {TARGET_REFUSAL_S:g} s each).",
    ]


def main() -> None:
    sessions = int(sys.argv[1])
    partitions = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    print(orjson.dumps(run(sessions, partitions)).decode(), flush=True)


if __name__ == "__main__":
    main()
