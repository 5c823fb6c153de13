"""Throwaway Apache Kafka (KRaft) clusters for fault tests: N nodes on free loopback ports.

Each node is a combined broker+controller (static quorum of all nodes) with a small heap, its
data and logs under the cluster's own home directory, started from the same Maven jars as
``broker.py``. Nodes can be stopped (SIGTERM), killed (SIGKILL) and started again with their
data kept; ``close()`` kills whatever is left and removes the home. Nothing here touches the
development broker that ``broker.py up`` runs.

    with KafkaCluster(nodes=3) as cluster:
        cluster.bootstrap            # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        cluster.kill(2); cluster.start_node(2)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from infra.kafka import broker

# Keys of server.properties.in the cluster sets itself (replication follows the node count).
_REPLACED = {"node.id", "controller.quorum.bootstrap.servers"}


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel reports free on 127.0.0.1 (all bound at once, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def java_string_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), as a signed 32-bit int."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_partition(key: str, partitions: int) -> int:
    """The __transaction_state (or __consumer_offsets) partition whose leader coordinates
    `key`: Kafka's Utils.abs(key.hashCode) % partitions (abs(MIN_VALUE) is 0 there)."""
    h = java_string_hash(key)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def render_config(node: KafkaNode, voters: str, nodes: int) -> str:
    """server.properties.in for one node of an `nodes`-node static quorum."""
    text = broker.TEMPLATE.read_text()
    text = text.replace("@PORT@", str(node.port))
    text = text.replace("@CONTROLLER_PORT@", str(node.controller_port))
    text = text.replace("@DATA_DIR@", str(node.home / "data"))
    replicas, min_isr = str(min(3, nodes)), str(min(2, nodes))
    overrides = {
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
    }
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in overrides or key in _REPLACED:
            continue
        lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items()]
    return "\n".join(lines) + "\n"


class KafkaCluster:
    """`nodes` KRaft nodes (broker+controller each) on free ports under a temp home."""

    def __init__(self, nodes: int = 3, heap: str = "320m", home: Path | None = None) -> None:
        self.home = home or Path(tempfile.mkdtemp(prefix="sessionwarden-kafka-"))
        self.heap = heap
        ports = free_ports(2 * nodes)
        self.nodes = [
            KafkaNode(i + 1, ports[2 * i], ports[2 * i + 1], self.home / f"node{i + 1}")
            for i in range(nodes)
        ]
        self.voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        self._java = ""
        self._libs = Path()

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> KafkaCluster:
        """Format every node's storage, start them all, wait until every broker is registered."""
        self._java = broker.check_java()
        self._libs = broker.fetch()
        cluster_id = self._run_tool("random-uuid").strip().splitlines()[-1]
        for node in self.nodes:
            (node.home / "logs").mkdir(parents=True, exist_ok=True)
            cfg = node.home / "server.properties"
            cfg.write_text(render_config(node, self.voters, len(self.nodes)))
            self._run_tool("format", "-t", cluster_id, "-c", str(cfg), logs=node.home / "logs")
        for node in self.nodes:
            self._spawn(node)
        self.wait_brokers({n.node_id for n in self.nodes}, timeout)
        return self

    def start_node(self, node_id: int, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again (its data kept) and wait until it is back."""
        node = self.node(node_id)
        if node.running:
            raise RuntimeError(f"node {node_id} is already running")
        self._spawn(node)
        self.wait_brokers({node_id}, timeout)

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Controlled shutdown (SIGTERM), SIGKILL if it does not exit within `timeout`."""
        node = self.node(node_id)
        if node.proc is None or not node.running:
            return
        node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(node_id)

    def kill(self, node_id: int) -> None:
        """Kill a node at once (SIGKILL): no controlled shutdown, no leadership hand-over."""
        node = self.node(node_id)
        if node.proc is not None and node.running:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(30)

    def close(self) -> None:
        for node in self.nodes:
            self.kill(node.node_id)
        if os.environ.get("SESSIONWARDEN_KEEP_TEST_CLUSTER"):
            return
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers --------------------------------------------------------------------------

    def alive_brokers(self, timeout: float = 2.0) -> set[int]:
        """Broker ids the cluster's metadata lists (asked of the running nodes)."""
        from confluent_kafka.admin import AdminClient

        servers = ",".join(n.address for n in self.nodes if n.running)
        if not servers:
            return set()
        admin = AdminClient({"bootstrap.servers": servers, "log_level": 0})
        try:
            return set(admin.list_topics(timeout=timeout).brokers)
        except Exception:
            return set()

    def wait_brokers(self, ids: set[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.node_id in ids and not node.running:
                    raise RuntimeError(f"node {node.node_id} exited:\n{self.log_tail(node)}")
            if ids <= self.alive_brokers():
                return
            time.sleep(0.25)
        tails = "\n".join(self.log_tail(self.node(i)) for i in sorted(ids))
        raise TimeoutError(f"brokers {sorted(ids)} not registered after {timeout:g}s\n{tails}")

    def log_tail(self, node: KafkaNode, lines: int = 40) -> str:
        chunks = []
        for name in ("server.log", "stdout.log"):
            f = node.home / "logs" / name
            if f.exists():
                tail = f.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- node {node.node_id} {name} ---\n" + "\n".join(tail))
        return "\n".join(chunks)

    def _run_tool(self, *args: str, logs: Path | None = None) -> str:
        cmd = broker.java_cmd(
            self._java, self._libs, "kafka.tools.StorageTool", *args, heap="128m", logs=logs
        )
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"kafka-storage {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _spawn(self, node: KafkaNode) -> None:
        cfg = node.home / "server.properties"
        logs = node.home / "logs"
        with open(logs / "stdout.log", "ab") as out:
            node.proc = subprocess.Popen(
                broker.java_cmd(
                    self._java, self._libs, "kafka.Kafka", str(cfg), heap=self.heap, logs=logs
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
