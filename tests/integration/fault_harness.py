"""Shared pieces of the fault tests: clusters of their own, timed load with ground truth,
and the verdict of `verify` over what the enforcer revoked."""

from __future__ import annotations

import io
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka.admin import AdminClient

from infra.kafka.cluster import KafkaCluster
from streams.publisher import AuthEventPublisher
from streams.settings import Settings, load_settings
from streams.sim.verify_cli import run_verify
from streams.topics import ensure_topics, topic_specs
from tests.integration.harness import (
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    logout_doc,
    parse_ts,
    wait_until,
)

# tests/fixtures/policies/fast.toml
TIMEOUTS = {"medium": (3.0, 8.0), "low": (6.0, 8.0)}  # risk -> (idle, absolute)

Script = list[tuple[float, dict[str, Any]]]


@contextmanager
def own_cluster(nodes: int) -> Iterator[KafkaCluster]:
    """A cluster of this test's own (never the shared development broker)."""
    cluster = KafkaCluster(nodes=nodes, heap="320m" if nodes > 1 else "384m")
    try:
        yield cluster.start()
    except BaseException:
        for node in cluster.nodes:
            print(cluster.log_tail(node, 20))
        raise
    finally:
        cluster.close()


def cluster_settings(cluster: KafkaCluster, **overrides: Any) -> Settings:
    """Settings for a fresh topic prefix on `cluster`, its topics created there."""
    prefix = f"f{uuid.uuid4().hex[:8]}."
    settings = load_settings(
        bootstrap_servers=cluster.bootstrap,
        topic_prefix=prefix,
        partitions=3,
        group_id=f"{prefix}enforcer",
        replication_factor=min(3, len(cluster.nodes)),
        **overrides,
    )
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 3})
    ensure_topics(admin, topic_specs(settings, 86400), report=lambda _: None)
    return settings


class Truth:
    """Ground truth of a scripted load: per session the reason, deadline and absolute cap."""

    def __init__(self) -> None:
        self.run_id = f"fault{uuid.uuid4().hex[:8]}"
        self.sessions: dict[str, dict[str, Any]] = {}
        self.absolute: dict[str, float] = {}

    def add(self, sid: str, user: str, reason: str, at: float, absolute: float) -> None:
        self.sessions[sid] = {"user_id": user, "kind": reason, "reason": reason, "at": at}
        self.absolute[sid] = absolute

    def document(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "sessions": self.sessions,
            "ended_session_used": [],
            "last_deadline": max(s["at"] for s in self.sessions.values()),
        }


def session_load(truth: Truth, t0: float, n: int, span: float, tag: str) -> Script:
    """`n` sessions starting over `span` seconds from `t0`: a third only log in (idle), a third
    act twice (idle later), a third log out; medium and low risk mixed."""
    script: Script = []
    for i in range(n):
        sid, user = f"{truth.run_id}-{tag}{i}", f"{truth.run_id}-u{i % 37}"
        start = round(t0 + span * i / n, 3)
        risk = "low" if i % 4 == 0 else "medium"
        idle, absolute = TIMEOUTS[risk]
        script.append((start, login_doc(sid, user, start, risk=risk)))
        if i % 3 == 0:
            truth.add(sid, user, "idle_timeout", start + idle, start + absolute)
        elif i % 3 == 1:
            end = round(start + 1, 3)
            script.append((end, logout_doc(sid, user, end)))
            truth.add(sid, user, "logout", end, start + absolute)
        else:
            last = round(start + 2, 3)
            script.append((start + 1, activity_doc(sid, user, round(start + 1, 3))))
            script.append((last, activity_doc(sid, user, last)))
            reason = "idle_timeout" if last + idle < start + absolute else "absolute_timeout"
            truth.add(sid, user, reason, min(last + idle, start + absolute), start + absolute)
    script.sort(key=lambda row: row[0])
    return script


def play(settings: Settings, script: Script) -> None:
    """Publish each event when its time comes, waiting for the broker's acknowledgement."""
    with AuthEventPublisher(settings.bootstrap_servers, settings.topics.input) as pub:
        for when, doc in script:
            wait_until(lambda w=when: time.time() >= w, 60, "an event's time")
            pub.publish(doc)
            pub.flush()


def wait_all_revoked(revocations: Collector, truth: Truth, timeout: float) -> None:
    def complete() -> bool:
        seen = {d["session_id"] for d in revocations.docs(type="revocation")}
        return seen >= set(truth.sessions)

    try:
        wait_until(complete, timeout, f"revocations of all {len(truth.sessions)} sessions")
    except AssertionError:
        seen = {d["session_id"] for d in revocations.docs(type="revocation")}
        missing = sorted(set(truth.sessions) - seen)
        by_phase = Counter(sid.rsplit("-", 1)[1].rstrip("0123456789") for sid in missing)
        raise AssertionError(
            f"{len(missing)} of {len(truth.sessions)} sessions never revoked "
            f"(by load phase: {dict(by_phase)}; first: {missing[:5]})"
        ) from None


def verify_run(
    settings: Settings, truth: Truth, tmp_path: Path, tolerance: float = 2.0
) -> tuple[dict[str, Any], str]:
    """`sessionwarden verify` over the run: its JSON report and its table."""
    truth_path = tmp_path / "truth.json"
    truth_path.write_bytes(orjson.dumps(truth.document()))
    report_path = tmp_path / "verify.json"
    out = io.StringIO()
    run_verify(settings, truth_path, tolerance, report_path, None, wait=False, out=out)
    return orjson.loads(report_path.read_bytes()), out.getvalue()


def report_failure(procs: list[EnforcerProcess], where: Path) -> None:
    """Keep every enforcer's whole log beside the test and print what it said most."""
    for n, proc in enumerate(procs):
        path = where / f"enforcer-{n}.log"
        path.write_text("\n".join(proc.lines) + "\n")
        said = Counter(str(m.get("msg", ""))[:120] for m in proc.messages())
        print(f"enforcer {n} (exit {proc.proc.poll()}): full log in {path}; most said:")
        for msg, count in said.most_common(12):
            print(f"  {count:6d}  {msg}")
        print("\n".join(proc.lines[-15:]))


def assert_enforced(
    revocations: Collector, truth: Truth, report: dict[str, Any], text: str
) -> None:
    """0 missed, 0 early, 0 spurious; every session revoked exactly once; none live (as of its
    revocation) past its absolute deadline."""
    assert {"missed": 0, "early": 0, "spurious": 0} == {
        k: report["totals"][k] for k in ("missed", "early", "spurious")
    }, text
    docs = [d for d in revocations.docs(type="revocation") if d["session_id"] in truth.sessions]
    doubled = {s: c for s, c in Counter(d["session_id"] for d in docs).items() if c != 1}
    assert {} == doubled, "sessions revoked more than once"
    past_cap = [
        d["session_id"]
        for d in docs
        if parse_ts(d["effective_at"]) > truth.absolute[d["session_id"]] + 0.002
    ]
    assert [] == past_cap, "sessions left live past their absolute deadline"
