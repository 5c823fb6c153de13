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
import uuid
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
from sessionwarden.testing.collector import CLIENT_ID as COLLECTOR_CLIENT_ID
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
    LONG_POLICY,
    Collector,
    DetectProcess,
    EnforcerProcess,
    login_doc,
    logout_doc,
    wait_drained,
    wait_until,
)
from tests.pg import SinkProcess

pytestmark = pytest.mark.faults

TENANT = "acme"  # the load's tenant (harness.login_doc)
ENFORCER_CLIENT = "sessionwarden-enforcer-0"  # its input consumer's client.id (and producer's)
BUDGET_S = 5.0  # the service's staleness budget
RECOVER_WITHIN_S = 10.0  # after the thaw, live sessions are served again within this
STORED_WITHIN_S = 30.0  # the sink stores what fell due inside the hang within this of its end
SINK_SESSION_TIMEOUT_MS = 120_000
"""The sink's group membership outlives the hang: no rebalance after it restarts the sink's
fetches, which must resume by themselves (as with a short hang under the default timeout)."""
DRAINED_WITHIN_S = 30.0  # the detectors alert on audit records appended after it within this
LOGOUTS_WITHIN_S = 40.0
"""A logout appended after the thaw is revoked within this of its append: the enforcer's input
consumer fetches again (a wedged one is sought back after kafka_fetch_stall_s, 10 s, and its
clients rebuilt if that does not move it)."""


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
    for a time after their revocation was committed, logouts appended after it revoked within
    LOGOUTS_WITHIN_S (the enforcer's input consumer fetches again), and `verify`: 0 missed, 0
    early, 0 spurious; the sink stores every revocation committed, once (count and id as on
    the topic), those due inside the hang within STORED_WITHIN_S of its end; the detect worker
    alerts on audit records appended after it within DRAINED_WITHIN_S and commits its offsets
    to the end."""
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
        # Logouts appended after the thaw: how long until a reader saw each revoked.
        thawed_logouts = {
            d["session_id"]: r
            for r, d in appended
            if d["type"] == "logout" and r > back_at and d["session_id"] in truth.sessions
        }
        logout_s = [seen[s] - r for s, r in thawed_logouts.items() if s in seen]
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
        stalled = [m for m in enforcer.messages() if "stopped fetching" in str(m.get("msg"))]
        print(
            f"{len(thawed_logouts)} logouts appended after the thaw, revoked at most "
            f"{max(logout_s, default=0.0):.2f}s after; enforcer fetch stalls: {len(stalled)}; "
            f"test readers reopened: revocations {revocations.reopened}, alerts {alerts.reopened}"
        )
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
        assert len(thawed_logouts) >= 10 and len(logout_s) == len(thawed_logouts)
        assert max(logout_s) <= LOGOUTS_WITHIN_S
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


FETCH_API_KEY = 1


@dataclass
class Link:
    """One client connection through the proxy: the client.id its requests carry, whether it
    has sent a Fetch (a consumer's connection to a partition leader), and whether it still
    forwards (cleared for good by ``PartitionProxy.wedge``)."""

    client_id: str | None = None
    fetching: bool = False
    forwarding: threading.Event = field(default_factory=threading.Event)
    _buffer: bytes = b""

    def __post_init__(self) -> None:
        self.forwarding.set()

    def learn(self, data: bytes) -> None:
        """Read request headers off the client's byte stream (size, api key, api version,
        correlation id, client id) until the first Fetch."""
        if self.fetching:
            return
        buf = self._buffer + data
        while len(buf) >= 4:
            size = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + size:
                break
            frame, buf = buf[4 : 4 + size], buf[4 + size :]
            n = int.from_bytes(frame[8:10], "big", signed=True)
            if n >= 0:
                self.client_id = frame[10 : 10 + n].decode(errors="replace")
            if int.from_bytes(frame[:2], "big") == FETCH_API_KEY:
                self.fetching = True
                buf = b""
        self._buffer = buf


class PartitionProxy:
    """A TCP proxy from a port of its own to ``upstream``, in a thread. ``cut()`` stops it
    forwarding in both directions without closing anything (connections stay open, requests
    go unanswered, new connections are accepted and held: a network partition as a client
    sees it); ``heal()`` forwards again, what was held included (TCP retransmitting).
    ``wedge(client_id)`` silences for good the open fetch connections of one client (a
    consumer whose own connection stayed wedged after a thaw), every other connection and
    every new one forwarding."""

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
        self._links: list[Link] = []
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def cut(self) -> None:
        self._open.clear()

    def wedge(self, client_id: str) -> int:
        """Silence the open connections of ``client_id`` that fetch; returns how many."""
        wedged = [k for k in self._links if k.client_id == client_id and k.fetching]
        for link in wedged:
            link.forwarding.clear()
        return len(wedged)

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
        link = Link()
        self._links.append(link)
        for src, dst, learn in ((client, server, True), (server, client, False)):
            threading.Thread(target=self._pipe, args=(src, dst, link, learn), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, link: Link, learn: bool) -> None:
        try:
            while True:
                self._open.wait()  # cut: nothing more is read, so nothing is answered
                data = src.recv(65536)
                if not data:
                    break
                if learn:
                    link.learn(data)
                self._open.wait()  # read just before the cut: held until healed
                link.forwarding.wait()  # wedged: held for good
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


@pytest.fixture(scope="module")
def proxied_cluster() -> Iterator[ProxiedCluster]:
    """One proxied cluster for the partition and the wedged-connection tests (each has topics
    and groups of its own; each heals what it cut)."""
    proxy = PartitionProxy()
    cluster = ProxiedCluster(proxy)
    try:
        cluster.start()
        yield cluster
    finally:
        proxy.heal()
        cluster.close()
        proxy.close()


@pytest.mark.parametrize("cut_s", [15.0])
def test_a_network_partition_never_makes_a_stale_listener_look_current(
    proxied_cluster: ProxiedCluster, tmp_path: Path, pg_sandbox: Sandbox, cut_s: float
) -> None:
    """Every client cut off from the broker (a proxy that stops forwarding, connections left
    open) for ``cut_s`` under load, then healed; the broker itself keeps running."""
    proxy = proxied_cluster.proxy
    try:
        hang_under_load(proxied_cluster, proxy, cut_s, tmp_path, pg_sandbox)
    finally:
        proxy.heal()


WEDGE_STALL_S = 3.0  # the enforcer's kafka_fetch_stall_s here
WEDGED_WITHIN_S = 30.0
"""Logouts appended while the readers' fetch connections are wedged are revoked, and read by
the test reader, within this. librdkafka gives up on a silent connection by itself only after
socket.timeout.ms (60 s): the stall watches must notice first."""


def test_readers_whose_fetch_connections_stay_wedged_catch_up(
    proxied_cluster: ProxiedCluster, tmp_path: Path
) -> None:
    """The enforcer's input consumer and the test reader each keep a fetch connection that is
    open and silent for good (as one was after a thaw: its own watermark queries unanswered
    too) while the broker answers every other connection: both notice they stopped fetching
    with records waiting and catch up; the logouts are revoked once each."""
    settings = cluster_settings(proxied_cluster)
    proxy = proxied_cluster.proxy
    enforcer = EnforcerProcess(
        settings, policy=LONG_POLICY, SESSIONWARDEN_KAFKA_FETCH_STALL_S=str(WEDGE_STALL_S)
    )
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    run = f"wedge{uuid.uuid4().hex[:6]}"
    try:
        enforcer.wait_assigned()
        now = time.time()
        sessions = [(f"{run}-s{i}", f"{run}-u{i}") for i in range(12)]
        warm = [(now, login_doc(sid, user, now)) for sid, user in sessions]
        warm.append((now, logout_doc(*sessions[0], now)))  # every connection in use
        play(settings, warm)
        wait_until(lambda: revocations.docs(session_id=sessions[0][0]), 30, "the first logout")
        wedged = {c: proxy.wedge(c) for c in (ENFORCER_CLIENT, COLLECTOR_CLIENT_ID)}
        assert all(wedged.values()), wedged
        later = time.time()
        appended = play(settings, [(later, logout_doc(s, u, later)) for s, u in sessions[1:]])
        logouts = {d["session_id"]: r for r, d in appended}

        def all_read() -> bool:
            return {d["session_id"] for d in revocations.docs(type="revocation")} >= set(logouts)

        wait_until(all_read, WEDGED_WITHIN_S + 60, "the logouts sent into the wedge")
        seen = {d["session_id"]: t for t, d in revocations.timed(type="revocation")}
        taken_s = max(seen[s] - r for s, r in logouts.items())
        stalls = [m for m in enforcer.messages() if "stopped fetching" in str(m.get("msg"))]
        print(
            f"wedged fetch connections {wedged}; {len(logouts)} logouts read revoked at most "
            f"{taken_s:.2f}s after their append; enforcer said: "
            f"{[m['msg'] for m in stalls]}; test reader reopened {revocations.reopened}"
        )
        counts = Counter(d["session_id"] for d in revocations.docs(type="revocation"))
        assert {s: 1 for s, _ in sessions} == dict(counts), "each session revoked once"
        assert taken_s <= WEDGED_WITHIN_S
        assert revocations.reopened >= 1 and stalls
    except BaseException:
        report_failure([enforcer], tmp_path)
        raise
    finally:
        revocations.close()
        enforcer.stop()
