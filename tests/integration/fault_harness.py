"""Shared pieces of the fault tests: clusters of their own, timed load with ground truth,
and the verdict of `verify` over what the enforcer revoked."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from infra.kafka.cluster import KafkaCluster
from sessionwarden.audit.oracle import judge, stamp
from sessionwarden.audit.verify import AUDITED, audit, read_run, render_text
from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.kafka.topics import ensure_topics, topic_specs
from sessionwarden.policy import load_policy
from sessionwarden.sdk.publisher import AuthEventPublisher, producer_config, to_wire
from sessionwarden.testing.events import iso
from tests.integration.harness import (
    FAST_POLICY,
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    logout_doc,
    parse_ts,
    wait_until,
)

FAST = load_policy(FAST_POLICY)
TIMEOUTS = {"medium": (3.0, 8.0), "low": (6.0, 8.0)}  # fast.toml: risk -> (idle, absolute)

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
        self.ambiguous: set[str] = set()  # left out of the truth (see settle)
        self.ended_session_used: list[str] = []
        self.after_revocation: list[str] = []

    def add(self, sid: str, user: str, reason: str, at: float, absolute: float) -> None:
        self.sessions[sid] = {"user_id": user, "kind": reason, "reason": reason, "at": at}
        self.absolute[sid] = absolute

    def document(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "sessions": self.sessions,
            "ended_session_used": self.ended_session_used,
            "activity_after_revocation": self.after_revocation,
            "last_deadline": max(s["at"] for s in self.sessions.values()),
        }


def session_load(run_id: str, t0: float, n: int, span: float, tag: str) -> Script:
    """`n` sessions starting over `span` seconds from `t0`: a third only log in (idle), a third
    act twice (idle later), a third log out; medium and low risk mixed. The times are a
    schedule: `play` stamps each event when it really sends it."""
    script: Script = []
    for i in range(n):
        sid, user = f"{run_id}-{tag}{i}", f"{run_id}-u{i % 37}"
        start = t0 + span * i / n
        script.append((start, login_doc(sid, user, start, risk="low" if i % 4 == 0 else "medium")))
        if i % 3 == 1:
            script.append((start + 1, logout_doc(sid, user, start + 1)))
        elif i % 3 == 2:
            script.append((start + 1, activity_doc(sid, user, start + 1)))
            script.append((start + 2, activity_doc(sid, user, start + 2)))
    script.sort(key=lambda row: row[0])
    return script


Appended = list[tuple[float, dict[str, Any]]]  # (broker append time, the event as sent)


def play(settings: Settings, script: Script) -> Appended:
    """Send each event when its time comes, stamped with the time it is really sent (a busy
    machine sends late; the truth must follow what was sent, not the schedule). Returns every
    event with the broker's append time from its delivery report (LogAppendTime)."""
    appended: dict[str, float] = {}
    failures: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(err.str())
        else:
            appended[orjson.loads(msg.value())["event_id"]] = msg.timestamp()[1] / 1000

    producer = Producer(producer_config(settings.kafka.bootstrap_servers))
    sent = []
    for when, doc in script:
        wait_until(lambda w=when: time.time() >= w, 60, "an event's time")
        now = iso(round(time.time(), 3))
        doc = {**doc, "occurred_at": now, **({"auth_time": now} if "auth_time" in doc else {})}
        key, value = to_wire(doc)
        producer.produce(settings.topics.input, value, key, on_delivery=delivered)
        producer.poll(0)
        sent.append(doc)
    assert 0 == producer.flush(60) and not failures, f"undelivered events: {failures[:3]}"
    return [(appended[d["event_id"]], d) for d in sent]


def settle(truth: Truth, appended: Appended) -> int:
    """The ground truth of what was appended, from the simulation oracle (fast.toml, no
    producer-delay budget). A user whose outcome hangs on the moment a deadline fires (an event
    appended right then) is left out; returns how many sessions were."""
    by_user: dict[str, Appended] = defaultdict(list)
    for r, doc in appended:
        by_user[doc["user_id"]].append((r, doc))
    left_out = 0
    for user, events in by_user.items():
        verdict = judge(FAST, events, 0.0)
        if verdict.ambiguous:
            truth.ambiguous.update(verdict.ends)
            left_out += len(verdict.ends)
            continue
        for sid, (reason, at) in verdict.ends.items():
            login = next(d for _, d in events if d["type"] == "login" and d["session_id"] == sid)
            cap = FAST.timeouts_for(login["user_type"], login["risk_profile"]).absolute
            truth.add(sid, user, reason, at, stamp(login["occurred_at"]) + cap)
        truth.ended_session_used += verdict.ended_session_used
        truth.after_revocation += verdict.after_revocation
    return left_out


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
    """What `sessionwarden verify` does over the run (read the topics, audit, render), with the
    sessions `settle` left out removed from what was read. Returns its JSON report and table."""
    run = truth.run_id
    revocations = [
        d
        for d in read_run(settings, settings.topics.revocations, run)
        if d["session_id"] not in truth.ambiguous
    ]
    audited = [
        d
        for d in read_run(settings, settings.topics.audit, run)
        if d.get("type") in AUDITED and d["session_id"] not in truth.ambiguous
    ]
    report = audit(truth.document(), revocations, audited, tolerance)
    text = render_text(report)
    if truth.ambiguous:
        text += f"\n({len(truth.ambiguous)} session(s) left out: appended as a deadline fired)"
    (tmp_path / "verify.json").write_bytes(orjson.dumps(report.to_json()))
    return report.to_json(), text


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


def open_consumer(settings: Settings, isolation: str) -> Consumer:
    """A reader of its own group (never committing) at `isolation`."""
    return Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"watch-{uuid.uuid4().hex[:8]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
            "log_level": 3,
        }
    )


class OpenTransactionWatcher:
    """Reads the enforcer's changelog read_uncommitted: its records are appended inside the
    batch's transaction, before ``commit_transaction`` returns. Once armed, the first record
    seen triggers ``on_open()`` at once: the enforcer is then between producing a batch and
    its commit landing. Remembers where that record is."""

    def __init__(self, settings: Settings, on_open: Callable[[], None]) -> None:
        self._on_open = on_open
        self._armed = threading.Event()
        self.fired = threading.Event()
        self.record: tuple[int, int] = (-1, -1)  # (partition, offset) of the trigger
        self._stop = threading.Event()
        self._consumer = open_consumer(settings, "read_uncommitted")
        topic = settings.topics.enforcer_state
        md = self._consumer.list_topics(topic, timeout=10)
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_END) for p in md.topics[topic].partitions]
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def arm(self) -> None:
        self._armed.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.005):
                if msg.error() is None and self._armed.is_set() and not self.fired.is_set():
                    self._on_open()
                    self.record = (msg.partition(), msg.offset())
                    self.fired.set()
        self._consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def paced_logins(
    settings: Settings, truth: Truth, n: int, span_s: float, tag: str, stop: threading.Event
) -> None:
    """`n` logins (medium risk: revoked when idle for 3 s) over `span_s` seconds, each added to
    `truth` as it is sent; stops early when `stop` is set."""
    idle, absolute = TIMEOUTS["medium"]
    start = time.time()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        for i in range(n):
            if stop.wait(max(0.0, start + span_s * i / n - time.time())):
                break
            sid, user, t = (
                f"{truth.run_id}-{tag}{i}",
                f"{truth.run_id}-{tag}u{i}",
                round(time.time(), 3),
            )
            pub.publish(login_doc(sid, user, t))
            truth.add(sid, user, "idle_timeout", t + idle, t + absolute)
        pub.flush()
