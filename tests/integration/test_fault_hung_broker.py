"""A hung broker under load: the broker process frozen (SIGSTOP, what a long GC pause or a stuck
disk looks like from a client), then thawed. A fail-closed service (a RevocationListener asked
as RevocationMiddleware asks it) refuses every session once it can no longer know, serves live
sessions again by itself soon after the thaw, and never serves a revoked session it should
know of; the enforcer fires nothing early and misses nothing; the PostgreSQL sink stores every
revocation exactly once and the detect worker reads the audit topic to its end after it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from infra.kafka.cluster import KafkaCluster, KafkaNode
from sessionwarden.config.settings import Settings
from sessionwarden.detect.app import app_id
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.integration.fault_harness import (
    Truth,
    assert_enforced,
    cluster_settings,
    own_cluster,
    play,
    report_failure,
    session_load,
    settle,
    verify_run,
    wait_all_revoked,
)
from tests.integration.harness import (
    FAST_POLICY,
    Collector,
    DetectProcess,
    EnforcerProcess,
    wait_drained,
    wait_until,
)
from tests.pg import SinkProcess

pytestmark = pytest.mark.faults

TENANT = "acme"  # the load's tenant (harness.login_doc)
BUDGET_S = 5.0  # the service's staleness budget
RECOVER_WITHIN_S = 10.0  # after the thaw, live sessions are served again within this
STORED_WITHIN_S = 30.0  # the sink stores what fell due inside the hang within this of its end
SINK_SESSION_TIMEOUT_MS = 120_000
"""The sink's group membership outlives the hang: no rebalance after it restarts the sink's
fetches, which must resume by themselves (as with a short hang under the default timeout)."""
DRAINED_WITHIN_S = 30.0  # the detectors alert on audit records appended after it within this


@dataclass
class Answer:
    at: float  # wall time the question was asked
    session: str
    served: bool
    fresh_as_of: float  # wall time everything before was applied, as the listener says


@dataclass
class FailClosedService:
    """Asks the listener about a live session and a rotating slice of the load's sessions
    every few milliseconds, as a fail-closed service answers its requests."""

    listener: RevocationListener
    live: str
    load: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="service", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            load = self.load
            batch = [self.live, *(load[(turn * 16 + i) % len(load)] for i in range(16) if load)]
            for sid in batch:
                now = time.time()
                # Freshness read before the answer: whatever it vouches for was applied first.
                fresh = now - self.listener.staleness()
                served = not self.listener.is_revoked(TENANT, sid)
                self.answers.append(Answer(now, sid, served, fresh))
            turn += 1
            time.sleep(0.02)

    def live_answers(self) -> list[Answer]:
        return [a for a in self.answers if a.session == self.live]


def sink_policy(tmp_path: Path) -> Path:
    """fast.toml keeping revocations for 10 minutes: the sink keeps a row only until the
    longest absolute timeout has passed (8 s in fast.toml, less than the hang), so with the
    fast policy it would rightly store none of the revocations that fired inside it."""
    path = tmp_path / "sink.toml"
    path.write_text(FAST_POLICY.read_text().replace('absolute = "8s"', 'absolute = "10m"'))
    return path


def stored_revocations(box: Sandbox) -> dict[str, tuple[int, str, float]]:
    """Per session (one tenant in the load): the revocation records its row counts, the id of
    the revocation it holds, and when it was stored."""
    with psycopg.connect(box.sink_dsn) as conn:
        rows = conn.execute(
            "SELECT session_id, records, revocation_id::text, extract(epoch FROM revoked_at)"
            " FROM sessionwarden.revoked_sessions WHERE tenant = %s",
            (TENANT,),
        ).fetchall()
    return {sid: (n, rid, float(at)) for sid, n, rid, at in rows}


def detect_behind(settings: Settings) -> dict[int, tuple[int, int]]:
    """Per audit partition: the detect worker's committed offset and the partition's end."""
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": app_id(settings)}
    )
    try:
        topic = settings.topics.audit
        parts = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
        found = {}
        for tp in consumer.committed(parts, timeout=10):
            _, end = consumer.get_watermark_offsets(tp, timeout=10)
            found[tp.partition] = (tp.offset, end)
        return found
    finally:
        consumer.close()


def records_behind(found: dict[int, tuple[int, int]]) -> int:
    return sum(end - max(committed, 0) for committed, end in found.values())


def holds_every_revocation(listener: RevocationListener, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listener.healthy() and len(listener) >= count:
            return True
        time.sleep(0.05)
    return False


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Fault(Protocol):
    def begin(self) -> None: ...
    def end(self) -> None: ...


@dataclass
class Frozen:
    """The broker process stopped (SIGSTOP) and continued (SIGCONT)."""

    pid: int

    def begin(self) -> None:
        os.killpg(self.pid, signal.SIGSTOP)

    def end(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGCONT)


def hang_under_load(
    cluster: KafkaCluster, fault: Fault, hang_s: float, tmp_path: Path, pg: Sandbox
) -> None:
    """The broker unreachable for ``hang_s`` (``fault``) just after a load is sent; then back.
    Pass: 0 requests served past the staleness budget while it hangs, live sessions served
    again within RECOVER_WITHIN_S after it, 0 revoked sessions served once the listener vouches
    for a time after their revocation was committed, and `verify`: 0 missed, 0 early, 0
    spurious; the sink stores every revocation committed, once (count and id as on the topic),
    those due inside the hang within STORED_WITHIN_S of its end; the detect worker alerts on
    audit records appended after it within DRAINED_WITHIN_S and commits its offsets to the
    end."""
    lines = Lines()
    said = logging.getLogger("sessionwarden.sdk.listener")
    level = said.level
    said.setLevel(logging.INFO)
    said.addHandler(lines)
    settings = cluster_settings(cluster)
    enforcer = EnforcerProcess(settings)
    sink = SinkProcess(
        settings,
        pg.sink_dsn,
        policy=sink_policy(tmp_path),
        SESSIONWARDEN_SESSION_TIMEOUT_MS=str(SINK_SESSION_TIMEOUT_MS),
    )
    detect = DetectProcess(settings)
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    alerts = Collector(settings.kafka.bootstrap_servers, settings.topics.alerts)
    listener = RevocationListener(
        settings.kafka.bootstrap_servers,
        settings.topics.revocations,
        max_lifetime_s=3600.0,  # the check below needs every entry kept
        staleness_budget_s=BUDGET_S,
    )
    service = FailClosedService(listener, live="live-session-never-revoked")
    try:
        enforcer.wait_assigned()
        sink.wait_assigned()
        detect.wait_assigned()
        listener.start(timeout=30)
        assert listener.wait_ready(30)
        truth = Truth()
        service.start()
        # Deadlines 3 to 8 s after each login: the load's fall inside the hang, which begins
        # as soon as it is sent. Events are sent only while the broker answers (an event sent
        # into the hang is appended after it, stamped before it: the ground truth, on append
        # times, could not tell its order).
        t0 = time.time() + 0.5
        script = session_load(truth.run_id, t0, 200, 6.0, "a")
        service.load = sorted({d["session_id"] for _, d in script})
        appended = play(settings, script)
        fault.begin()
        hung_at = time.time()
        for proc in (enforcer, sink, detect):
            assert proc.proc.poll() is None, proc.log()
        time.sleep(max(0.0, hung_at + hang_s - time.time()))  # the hang itself
        fault.end()
        back_at = time.time()

        def served_again() -> list[float]:
            return [a.at for a in service.live_answers() if a.served and a.at > back_at]

        # Served past the budget while the broker hung.
        stale = [a for a in service.answers if a.served and hung_at + BUDGET_S <= a.at <= back_at]
        print(f"served past the budget while hung: {len(stale)}")
        recovered_s = min(wait_until(served_again, 60, "live sessions served again")) - back_at
        t1 = time.time() + 0.5
        after = session_load(truth.run_id, t1, 60, 3.0, "b")
        service.load = service.load + sorted({d["session_id"] for _, d in after})
        appended += play(settings, after)
        left_out = settle(truth, appended)
        overdue = [s for s, w in truth.sessions.items() if hung_at < w["at"] < back_at]
        wait_all_revoked(revocations, truth, 90)
        holds_all = holds_every_revocation(listener, len(truth.sessions), 30)
        # The sink: every revocation record read (read_committed) is stored, counted once.
        # (per session: how many revocation records, the last one's id)
        read = revocations.docs(type="revocation")
        counts = Counter(d["session_id"] for d in read)
        committed = {d["session_id"]: (counts[d["session_id"]], d["revocation_id"]) for d in read}

        def stored_now() -> dict[str, tuple[int, str]]:
            return {sid: (n, rid) for sid, (n, rid, _) in stored_revocations(pg).items()}

        deadline = back_at + STORED_WITHIN_S + 60  # waited past the bound, for the figure
        while stored_now() != committed and time.time() < deadline:
            time.sleep(0.2)
        rows = stored_revocations(pg)
        stored = {sid: (n, rid) for sid, (n, rid, _) in rows.items()}
        # When the sink stored the last revocation that fell due inside the hang.
        stored_s = max((rows[s][2] for s in overdue if s in rows), default=0.0) - back_at
        # The detectors: sentinels appended now alert on every partition (each is read in
        # order), and the worker commits its audit offsets to the end.
        drained_from = time.time()
        wait_drained(settings, alerts, "thaw", timeout=DRAINED_WITHIN_S + 60)
        drained_s = time.time() - drained_from
        behind = detect_behind(settings)
        while records_behind(behind) and time.time() < drained_from + DRAINED_WITHIN_S + 60:
            time.sleep(0.5)
            behind = detect_behind(settings)
        service.stop()
        report, text = verify_run(settings, truth, tmp_path)

        answers = service.answers
        # A revoked session served although the listener vouched for a time after an
        # independent read_committed reader had seen its revocation (so after its commit).
        seen = {d["session_id"]: t for t, d in revocations.timed(type="revocation")}
        revoked = [a for a in answers if a.served and a.session in seen]
        after_commit = [a for a in revoked if a.fresh_as_of > seen[a.session]]
        # For the figures: served after that reader saw the revocation at all.
        late = [a.at - seen[a.session] for a in revoked if a.at > seen[a.session]]
        print(text)
        print(
            f"hung {back_at - hung_at:.1f}s, {len(overdue)} deadlines inside; "
            f"{len(answers)} answers; served past the budget while hung: {len(stale)}; "
            f"revoked sessions served after the listener vouched past their commit: "
            f"{len(after_commit)}; served after a reader saw the revocation: {len(late)} "
            f"(at most {max(late, default=0.0):.3f}s after); live sessions served again "
            f"{recovered_s:.2f}s after the hang; last overdue revocation "
            f"{max((seen[s] for s in overdue), default=back_at) - back_at:.2f}s after it; listener "
            f"{'healthy, holding every revocation' if holds_all else 'NOT current'}, "
            f"{listener.stats}"
        )
        print("listener said:", *lines.messages, sep="\n  ")
        probing = [m for m in enforcer.messages() if "last-stable-offset" in str(m.get("msg"))]
        print(f"enforcer probe lines: {len(probing)}")
        missing = sorted(set(committed) - set(stored))
        wrong = sorted(s for s in set(committed) & set(stored) if committed[s] != stored[s])
        extra = sorted(set(stored) - set(committed))
        reopened = [m for m in sink.messages() + detect.messages() if "reopen" in str(m.get("msg"))]
        print(
            f"sink: {len(stored)} rows ({sum(n for n, _ in stored.values())} records) for "
            f"{len(committed)} sessions revoked ({len(read)} records); missing {len(missing)}, "
            f"miscounted or another id {len(wrong)}, extra {len(extra)}; the last revocation "
            f"due inside the hang stored {stored_s:.2f}s after the thaw\n"
            f"detect: sentinels alerted {drained_s:.2f}s after they were sent "
            f"({drained_from + drained_s - back_at:.2f}s after the thaw); audit records past "
            f"its committed offsets: {records_behind(behind)} (committed, end per partition: "
            f"{behind}); reopened consumers: {len(reopened)}"
        )
        # One line per change of state, not one per try.
        assert len(lines.messages) <= 20
        assert len(probing) <= 10
        assert [] == stale[:5]
        assert [] == after_commit[:5]
        assert recovered_s <= RECOVER_WITHIN_S
        assert holds_all, "the listener never became current again"
        assert len(overdue) >= 30
        assert left_out <= len(appended) // 20
        assert_enforced(revocations, truth, report, text)
        assert ([], [], []) == (missing[:5], wrong[:5], extra[:5])
        assert stored_s <= STORED_WITHIN_S
        assert drained_s <= DRAINED_WITHIN_S
        assert 0 == records_behind(behind), behind
    except BaseException:
        report_failure([enforcer], tmp_path)
        for proc in (sink, detect):
            (tmp_path / f"{proc.name.replace(' ', '-')}.log").write_text(proc.log())
            print(f"{proc.name} said last:", *proc.log().splitlines()[-15:], sep="\n  ")
        print("listener said:", *lines.messages, sep="\n  ")
        raise
    finally:
        fault.end()
        service.stop()
        said.removeHandler(lines)
        said.setLevel(level)
        listener.close()
        revocations.close()
        alerts.close()
        detect.stop()
        sink.stop()
        enforcer.stop()


@pytest.fixture(scope="module")
def frozen_cluster() -> Iterator[KafkaCluster]:
    """One cluster for both lengths of freeze (each case has topics and a group of its own)."""
    with own_cluster(1) as cluster:
        yield cluster


@pytest.mark.parametrize("frozen_s", [15.0, 60.0])
def test_a_frozen_broker_never_makes_a_stale_listener_look_current(
    frozen_cluster: KafkaCluster, tmp_path: Path, pg_sandbox: Sandbox, frozen_s: float
) -> None:
    """The broker process frozen (SIGSTOP) for ``frozen_s`` under load, then thawed."""
    proc = frozen_cluster.nodes[0].proc
    assert proc is not None
    hang_under_load(frozen_cluster, Frozen(proc.pid), frozen_s, tmp_path, pg_sandbox)


# -- the same fault as a network partition: a TCP proxy between every client and the broker --


class PartitionProxy:
    """A TCP proxy from a port of its own to ``upstream``, in a thread. ``cut()`` stops it
    forwarding in both directions without closing anything (connections stay open, requests
    go unanswered, new connections are accepted and held: a network partition as a client
    sees it); ``heal()`` forwards again, what was held included (TCP retransmitting)."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port: int = self._server.getsockname()[1]
        self.upstream: tuple[str, int] | None = None
        self._open = threading.Event()
        self._open.set()
        self._closed = False
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def cut(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    begin, end = cut, heal

    def close(self) -> None:
        self._closed = True
        self._open.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._open.wait()
        assert self.upstream is not None
        try:
            server = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        self._sockets.append(server)
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._open.wait()  # cut: nothing more is read, so nothing is answered
                data = src.recv(65536)
                if not data:
                    break
                self._open.wait()  # read just before the cut: held until healed
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class ProxiedCluster(KafkaCluster):
    """One node whose advertised listener is ``proxy``: every client reaches it through it."""

    def __init__(self, proxy: PartitionProxy) -> None:
        super().__init__(nodes=1, heap="384m")
        self.proxy = proxy
        proxy.upstream = ("127.0.0.1", self.nodes[0].port)

    @property
    def proxied(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    @property
    def bootstrap(self) -> str:
        return self.proxied

    def _spawn(self, node: KafkaNode) -> None:
        cfg = node.home / "server.properties"
        text = cfg.read_text().replace(
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
            f"advertised.listeners=PLAINTEXT://{self.proxied}",
        )
        assert self.proxied in text, "the broker must advertise the proxy"
        cfg.write_text(text)
        super()._spawn(node)


@pytest.mark.parametrize("cut_s", [15.0])
def test_a_network_partition_never_makes_a_stale_listener_look_current(
    tmp_path: Path, pg_sandbox: Sandbox, cut_s: float
) -> None:
    """Every client cut off from the broker (a proxy that stops forwarding, connections left
    open) for ``cut_s`` under load, then healed; the broker itself keeps running."""
    proxy = PartitionProxy()
    cluster = ProxiedCluster(proxy)
    try:
        cluster.start()
        hang_under_load(cluster, proxy, cut_s, tmp_path, pg_sandbox)
    finally:
        proxy.heal()
        cluster.close()
        proxy.close()
