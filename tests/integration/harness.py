"""Processes and readers for integration tests: a real enforcer process, topic collectors,
and waiting on conditions with deadlines (never fixed sleeps)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from sessionwarden.audit.scenario import iso
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.testing.children import stop_child

REPO = Path(__file__).resolve().parents[2]
FAST_POLICY = REPO / "tests/fixtures/policies/fast.toml"
DETECT_POLICY = REPO / "tests/fixtures/policies/detect.toml"


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def open_changelog_transaction(settings: Settings, partition: int) -> Producer:
    """A dead owner's transaction left open on one enforcer-state partition (read_committed
    restores of that partition wait for it); the caller aborts it with ``abort_transaction``."""
    zombie = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "transactional.id": f"zombie-{uuid.uuid4().hex[:8]}",
            "transaction.timeout.ms": 120_000,
            "log_level": 3,
        }
    )
    zombie.init_transactions(30)
    zombie.begin_transaction()
    zombie.produce(settings.topics.enforcer_state, b"{}", b"s:zombie", partition=partition)
    assert 0 == zombie.flush(10)
    return zombie


@dataclass(frozen=True)
class Endpoint:
    """A process's metrics server: its base URL and the bearer token every request needs."""

    base: str
    token: str


class ServiceProcess:
    """A Sessionwarden service in a subprocess, its log lines collected, stopped with SIGTERM."""

    name = "service"
    ready_message = ""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def log(self) -> str:
        return "\n".join(self.lines[-40:])

    def messages(self) -> list[dict[str, Any]]:
        """The JSON log lines, parsed."""
        found = []
        for line in list(self.lines):
            with contextlib.suppress(orjson.JSONDecodeError):
                doc = orjson.loads(line)
                if isinstance(doc, dict):
                    found.append(doc)
        return found

    def metrics_url(self, timeout: float = 30) -> Endpoint:
        """Where the process serves /metrics, /healthz and /readyz, and the bearer token from
        the file it wrote (both from its log line)."""

        def bound() -> Endpoint | None:
            for doc in self.messages():
                if doc.get("msg") == "metrics serving":
                    token = Path(doc["token_file"]).read_text().strip()
                    return Endpoint(f"http://{doc['host']}:{doc['port']}", token)
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
            return None

        found: Endpoint = wait_until(bound, timeout, f"the {self.name}'s metrics server")
        return found

    def is_ready(self) -> bool:
        return any(self.ready_message in line for line in self.lines)

    def wait_assigned(self, timeout: float = 60) -> None:
        def assigned() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
            return self.is_ready()

        wait_until(assigned, timeout, f"the {self.name} to be assigned partitions")

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself and for its whole log to be read."""
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        return stop_child(self.proc, timeout)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EnforcerProcess(ServiceProcess):
    """`sessionwarden enforce` in a subprocess."""

    name = "enforcer"
    ready_message = "partitions assigned"

    def __init__(
        self, settings: Settings, instance_id: str = "0", policy: Path = FAST_POLICY, **env: str
    ) -> None:
        super().__init__(
            ["-m", "sessionwarden", "enforce"],
            {
                **service_env(settings, policy),
                "SESSIONWARDEN_GROUP_ID": settings.group_id,
                "SESSIONWARDEN_INSTANCE_ID": instance_id,
                "SESSIONWARDEN_TRANSACTION_TIMEOUT_MS": "5000",
                "SESSIONWARDEN_SESSION_TIMEOUT_MS": "3000",
                **env,
            },
        )


def service_env(settings: Settings, policy: Path) -> dict[str, str]:
    """The environment every service of one test shares."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "SESSIONWARDEN_TOPIC_PREFIX": settings.topic_prefix,
        "SESSIONWARDEN_PARTITIONS": str(settings.partitions),
        "SESSIONWARDEN_POLICY_FILE": str(policy),
        "SESSIONWARDEN_LOG_SALT": "test-salt",
        "SESSIONWARDEN_LOG_FORMAT": "json",
        # A free port each: tests (and other checkouts) run several services at once.
        "SESSIONWARDEN_ENFORCER_METRICS_PORT": "0",
        "SESSIONWARDEN_DETECT_METRICS_PORT": "0",
        "SESSIONWARDEN_SINK_METRICS_PORT": "0",
        "SESSIONWARDEN_DASHBOARD_METRICS_PORT": "0",
        # Generated metrics tokens go beside the test's files, not into the working directory.
        "SESSIONWARDEN_METRICS_TOKEN_DIR": str(settings.metrics_token_dir or tempfile.gettempdir()),
    }


class DetectProcess(ServiceProcess):
    """`python -m sessionwarden.detect` in a subprocess."""

    name = "detect worker"

    def __init__(self, settings: Settings, **env: str) -> None:
        super().__init__(
            ["-m", "sessionwarden.detect"], {**service_env(settings, DETECT_POLICY), **env}
        )

    def is_ready(self) -> bool:
        return any(
            m.get("msg") == "partitions assigned and recovered" and m.get("partitions")
            for m in self.messages()
        )


COLLECTOR_STALL_S = 5.0
"""A Collector whose position has not moved for this long while the topic's end offsets are
ahead of it reopens its consumer at its position. After a broker frozen for a minute, its
librdkafka consumer was seen to stop fetching for good (thread alive, 138 of 260 revocations
read, while a fresh read_committed consumer read all 260)."""


class Collector:
    """Reads a topic (read_committed) from the beginning in a thread; records arrival times.
    A consumer that stops fetching while records wait for it is reopened where it stood."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.reopened = 0
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._group = f"collector-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = self._open({})
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self, positions: dict[int, int]) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap_servers,
                "group.id": self._group,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
                "log_level": 3,
            }
        )
        md = consumer.list_topics(self._topic, timeout=10)
        self._partitions = sorted(md.topics[self._topic].partitions)
        consumer.assign(
            [
                TopicPartition(self._topic, p, positions.get(p, OFFSET_BEGINNING))
                for p in self._partitions
            ]
        )
        return consumer

    def _run(self) -> None:
        moved = checked = time.monotonic()
        last: dict[int, int] = {}
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.05):
                if msg.error() is None and msg.value() is not None:
                    with self._lock:
                        self.records.append((time.time(), orjson.loads(msg.value())))
            now = time.monotonic()
            if now - checked < 1.0:
                continue
            checked = now
            with contextlib.suppress(KafkaException):
                positions = self._positions()
                if positions != last:
                    last, moved = positions, now
                elif now - moved >= COLLECTOR_STALL_S and self._behind(positions):
                    self._reopen(positions)
                    moved = now
        self._consumer.close()

    def _positions(self) -> dict[int, int]:
        tps = [TopicPartition(self._topic, p) for p in self._partitions]
        return {tp.partition: tp.offset for tp in self._consumer.position(tps) if tp.offset >= 0}

    def _behind(self, positions: dict[int, int]) -> bool:
        """Whether a partition's committed end (read_committed: the last stable offset) is
        past the position."""
        for p in self._partitions:
            _, end = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, p), timeout=2, cached=False
            )
            if end > positions.get(p, 0):
                return True
        return False

    def _reopen(self, positions: dict[int, int]) -> None:
        stuck, self._consumer = self._consumer, self._open(positions)
        stuck.close()
        self.reopened += 1
        print(
            f"collector of {self._topic}: no progress for {COLLECTOR_STALL_S:g} s behind the "
            f"end offsets; reopened at {positions}"
        )

    def docs(self, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [d for _, d in self.records if all(d.get(k) == v for k, v in match.items())]

    def timed(self, **match: Any) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(t, d) for t, d in self.records if all(d.get(k) == v for k, v in match.items())]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_drained(settings: Settings, alerts: Collector, tag: str, timeout: float = 30) -> None:
    """Put one ended-session-used record at the end of every audit partition and wait for their
    alerts: the worker reads each partition in order, so everything before them is done."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "log_level": 3})
    now = datetime.now(UTC)
    for p in range(settings.partitions):
        doc = {
            "type": "ended_session_used",
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "occurred_at": now,
            "user_id": f"sentinel-{tag}-{p}",
            "tenant": "acme",
            "session_id": "sentinel",
            "action": "sentinel",
            "session_state": "unknown",
        }
        producer.produce(
            settings.topics.audit, encode_dict(doc), doc["user_id"].encode(), partition=p
        )
    producer.flush(10)
    wanted = {f"sentinel-{tag}-{p}" for p in range(settings.partitions)}
    wait_until(
        lambda: wanted <= {d["user_id"] for d in alerts.docs()},
        timeout,
        f"the {tag} sentinel alerts",
    )


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def login_doc(
    sid: str,
    user: str,
    t: float,
    roles: list[str] | None = None,
    risk: str = "medium",
    user_type: str = "customer",
) -> dict[str, Any]:
    return {
        "type": "login",
        "event_id": str(uuid.uuid4()),
        "occurred_at": iso(t),
        "user_id": user,
        "tenant": "acme",
        "session_id": sid,
        "user_type": user_type,
        "risk_profile": risk,
        "roles": roles or ["viewer"],
        "permissions": [],
        "auth_method": "password",
        "auth_time": iso(t),
    }


def activity_doc(sid: str, user: str, t: float, action: str = "docs.read") -> dict[str, Any]:
    return {
        "type": "activity",
        "event_id": str(uuid.uuid4()),
        "occurred_at": iso(t),
        "user_id": user,
        "tenant": "acme",
        "session_id": sid,
        "action": action,
        "resource": "/x",
    }


def logout_doc(sid: str, user: str, t: float) -> dict[str, Any]:
    return {
        "type": "logout",
        "event_id": str(uuid.uuid4()),
        "occurred_at": iso(t),
        "user_id": user,
        "tenant": "acme",
        "session_id": sid,
    }


def role_change_doc(
    user: str, t: float, granted: list[str] | None = None, removed: list[str] | None = None
) -> dict[str, Any]:
    return {
        "type": "role_change",
        "event_id": str(uuid.uuid4()),
        "occurred_at": iso(t),
        "user_id": user,
        "tenant": "acme",
        "roles_granted": granted or [],
        "roles_removed": removed or [],
        "actor": "admin-7",
    }
