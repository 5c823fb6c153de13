"""Shared benchmark plumbing: prefixed topics, pre-filled traffic, child processes, RSS, and the
prober of a layer that refuses revoked sessions."""

from __future__ import annotations

import contextlib
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.kafka.producing import produce_waiting as produce
from sessionwarden.kafka.topics import (
    INPUT_MAX_MESSAGE_BYTES,
    delete_topics,
    ensure_topics,
    topic_specs,
)
from sessionwarden.policy import load_policy
from sessionwarden.testing.children import kill_tree
from sessionwarden.testing.events import activity_doc, login_doc

REPO = Path(__file__).resolve().parent.parent
PROBE_EVERY_S = 0.01


def bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def broker_port() -> int:
    """The port of the first bootstrap server."""
    return int(bootstrap().split(",")[0].rsplit(":", 1)[1])


@contextlib.contextmanager
def bench_topics(
    name: str, partitions: int = 6, servers: str | None = None, policy_file: Path | None = None
) -> Iterator[Settings]:
    """Fresh prefixed topics for one benchmark, deleted afterwards; with a ``policy_file`` the
    settings name it and retention follows its longest absolute timeout (else a day)."""
    prefix = f"bench-{name}-{uuid.uuid4().hex[:6]}."
    settings = load_settings(
        bootstrap_servers=servers or bootstrap(),
        topic_prefix=prefix,
        partitions=partitions,
        group_id=f"{prefix}enforcer",
        **({} if policy_file is None else {"policy_file": str(policy_file)}),
    )
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    max_absolute = 86400 if policy_file is None else load_policy(policy_file).max_absolute
    specs = topic_specs(settings, max_absolute)
    ensure_topics(admin, specs, report=lambda _: None)
    try:
        yield settings
    finally:
        delete_topics(admin, [s.name for s in specs], timeout=60)


def child_settings(servers: str, prefix: str, **extra: Any) -> Settings:
    """A benchmark child's settings on the topics its parent made under ``prefix``: six
    partitions, its enforcer's group named after the prefix; ``extra``, any other setting."""
    return load_settings(
        bootstrap_servers=servers,
        topic_prefix=prefix,
        partitions=6,
        group_id=f"{prefix}enforcer",
        **extra,
    )


class Prober(threading.Thread):
    """Checks every short session from its deadline on, every PROBE_EVERY_S, until the layer
    under test refuses it; the latency is the refusal's arrival minus the deadline. A subclass
    opens its connection in ``run`` and hands ``probe`` its refusal check."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pending: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def add(self, sid: str, deadline: float) -> None:
        with self._lock:
            self.pending[sid] = deadline

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    @property
    def halted(self) -> bool:
        return self._halt.is_set()

    def probe(self, refused: Callable[[str], bool]) -> None:
        """Until stopped: every session past its deadline checked with ``refused``, once a
        round, each round PROBE_EVERY_S long."""
        while not self._halt.is_set():
            tick = time.monotonic()
            with self._lock:
                due = [(s, d) for s, d in self.pending.items() if d <= time.time()]
            for sid, deadline in due:
                if refused(sid):
                    self.latency[sid] = time.time() - deadline
                    with self._lock:
                        del self.pending[sid]
            time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - tick)))


def producer(settings: Settings) -> Producer:
    return Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "none",
            "batch.size": INPUT_MAX_MESSAGE_BYTES,  # auth.events' max.message.bytes
            "log_level": 3,
        }
    )


def mixed_docs(sessions: int, activities: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Logins for `sessions` users (one session each), then `activities` activity events over
    random sessions: the live set stays `sessions` throughout."""
    rng = random.Random(seed)
    sids = [f"s{i}-{rng.getrandbits(48):012x}" for i in range(sessions)]
    t0 = time.time() - 60
    for i, sid in enumerate(sids):
        yield login_doc(
            sid, f"u{i}", t0, risk="low", tenant="bench",
            event_id=str(uuid.UUID(int=rng.getrandbits(128))),
            permissions=["docs:read"], source_ip="192.0.2.10",
        )  # fmt: skip
    for n in range(activities):
        i = rng.randrange(sessions)
        yield activity_doc(
            sids[i], f"u{i}", t0 + 30 * n / max(activities, 1), tenant="bench",
            resource=f"/docs/{n % 1000}", event_id=str(uuid.UUID(int=rng.getrandbits(128))),
        )  # fmt: skip


def fill_mixed(settings: Settings, sessions: int, activities: int, seed: int = 1) -> dict[str, Any]:
    """The input topic filled with ``mixed_docs``, keyed by user."""
    p = producer(settings)
    topic = settings.topics.input
    started = time.perf_counter()
    nbytes = 0
    for doc in mixed_docs(sessions, activities, seed):
        value = encode_dict(doc)
        nbytes += len(value)
        produce(p, topic, value, doc["user_id"].encode())
    p.flush(120)
    return {
        "events": sessions + activities,
        "sessions": sessions,
        "activities": activities,
        "mean_bytes": nbytes / max(1, sessions + activities),
        "fill_s": time.perf_counter() - started,
    }


# What a child's terminal spinner may leave before its result on the same line (faust's worker
# hides and shows the cursor even when stdout is a pipe): CSI sequences and backspaces.
_TERMINAL_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x08")


CHILD_TIMEOUT_CAP_S: float | None = None
"""When set (``bench.run --quick``), no child runs longer than this, whatever its own timeout."""


def run_child(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 1200, cwd: Path = REPO
) -> Any:
    """Run a benchmark child process; its last JSON object line on stdout is the result.
    ``cwd``: the checkout whose code it runs (another one than this: an A/B of two versions).

    On a timeout the child and every process below it (the services, workers and browser it
    started) are killed, and the error names the child and ends with what it printed: a hang
    says where it hung instead of outliving the run."""
    limit = timeout if CHILD_TIMEOUT_CAP_S is None else min(timeout, CHILD_TIMEOUT_CAP_S)
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": f"{cwd / 'streams'}:{cwd}", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        try:
            stdout, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # an orphan of init still holds the pipes
            stdout, stderr = "", "(its output pipes stayed open after the kill)"
        raise RuntimeError(
            f"{args} timed out after {limit:g}s; its output ended with:\n"
            f"{stdout[-2000:]}\n{stderr[-3000:]}"
        ) from None
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{stderr[-3000:]}")
    result = child_result(stdout)
    if result is None:
        raise RuntimeError(f"{args} printed no JSON result:\n{stdout[-2000:]}")
    return result


def child_result(stdout: str) -> Any:
    """The last line of ``stdout`` that is a JSON object, terminal control codes aside; None if
    there is none."""
    for line in reversed(_TERMINAL_CONTROL.sub("", stdout).strip().splitlines()):
        if line.startswith("{"):
            return orjson.loads(line)
    return None


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
