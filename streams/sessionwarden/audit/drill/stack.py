"""What the drill starts itself as child processes: the enforcer, the PostgreSQL sink and the
Shared Signals transmitter (their logs under the drill's work directory), and the example
service it freezes. The example service
in this process is sessionwarden/testing/example.py. Each weakening is an option of these
targets, never a patch."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from sessionwarden.config.settings import Settings
from sessionwarden.testing.children import Child, ChildFailed
from sessionwarden.testing.example import EXAMPLE, REPO


class StackError(RuntimeError):
    """A part of the drill's stack did not start."""


def start_child(
    name: str, args: list[str], env: dict[str, str], log: Path, ready: str, timeout: float
) -> Child:
    """``python <args>`` with the drill's environment, its output in ``log``, once it has said
    ``ready``."""
    child = Child([sys.executable, *args], env, name=name, cwd=REPO, watch="both", log=log)
    try:
        child.wait_for(ready, timeout)
    except ChildFailed as e:
        child.stop()
        raise StackError(str(e)) from None
    return child


def child_env(settings: Settings, policy_file: Path, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SESSIONWARDEN_TOPIC_PREFIX": settings.topics.prefix,
        "SESSIONWARDEN_PARTITIONS": str(settings.kafka.partitions),
        "SESSIONWARDEN_POLICY_FILE": str(policy_file),
        "SESSIONWARDEN_LOG_FORMAT": "json",
        **extra,
    }


def start_enforcer(settings: Settings, policy_file: Path, workdir: Path) -> Child:
    env = child_env(settings, policy_file, SESSIONWARDEN_GROUP_ID=f"{settings.topics.prefix}enf",
                    SESSIONWARDEN_INSTANCE_ID="0")  # fmt: skip
    return start_child("enforcer", ["-m", "sessionwarden", "enforce"], env,
                       workdir / "enforcer.log", "partitions assigned", 90)  # fmt: skip


def start_sink(settings: Settings, policy_file: Path, workdir: Path, dsn: str) -> Child:
    env = child_env(settings, policy_file, SESSIONWARDEN_PG_DSN=dsn,
                    SESSIONWARDEN_PG_SINK_GROUP_ID=f"{settings.topics.prefix}pg-sink")  # fmt: skip
    return start_child("postgres sink", ["-m", "sessionwarden", "sink", "postgres"], env,
                       workdir / "sink.log", "partitions assigned", 90)  # fmt: skip


def start_transmitter(
    settings: Settings, policy_file: Path, workdir: Path, port: int, key_file: Path,
    token_file: Path, salt: str,
) -> Child:  # fmt: skip
    """`sessionwarden ssf transmit` on 127.0.0.1:``port`` (its issuer), state under ``workdir``."""
    env = child_env(settings, policy_file, SESSIONWARDEN_GROUP_ID=f"{settings.topics.prefix}enf",
                    SESSIONWARDEN_LOG_SALT=salt, SESSIONWARDEN_SSF_TX_PORT=str(port),
                    SESSIONWARDEN_SSF_TX_ISSUER=f"http://127.0.0.1:{port}",
                    SESSIONWARDEN_SSF_TX_STATE_DIR=str(workdir / "ssf-state"),
                    SESSIONWARDEN_SSF_TX_SIGNING_KEY_FILE=str(key_file),
                    SESSIONWARDEN_SSF_TX_TOKEN_FILE=str(token_file),
                    SESSIONWARDEN_SSF_TX_ALLOW_PRIVATE_PUSH="true",  # its relying parties
                    SESSIONWARDEN_SSF_TX_METRICS_PORT="0",
                    SESSIONWARDEN_METRICS_TOKEN_DIR=str(workdir))  # fmt: skip
    return start_child("ssf transmitter", ["-m", "sessionwarden", "ssf", "transmit"], env,
                       workdir / "ssf-transmitter.log", "partitions assigned", 90)  # fmt: skip


class FrozenService:
    """The example service in a child process (fail-closed, ``budget_s`` staleness budget),
    which the drill freezes (SIGSTOP) for a while and thaws (SIGCONT): its listener misses
    what is revoked meanwhile, and must not answer from the stale set when it wakes."""

    def __init__(
        self, settings: Settings, policy_file: Path, workdir: Path, budget_s: float,
        session_key: bytes,
    ) -> None:  # fmt: skip
        from sessionwarden.testing.pg_cluster import free_port

        self.port = free_port()
        args = [str(EXAMPLE), "--port", str(self.port), "--staleness-budget", str(budget_s)]
        # A script's own folder heads sys.path, not the repository: name it, so the child
        # imports this tree's streams package, whatever is installed.
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        env = child_env(
            settings, policy_file, EXAMPLE_SESSION_KEY=session_key.hex(), PYTHONPATH=path
        )
        self.child = start_child("frozen example service", args, env,
                                 workdir / "frozen-service.log", "listening on", 60)  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def freeze(self, at: float, for_s: float) -> None:
        """From wall time ``at``, for ``for_s`` seconds (call it in a thread)."""
        time.sleep(max(0.0, at - time.time()))
        self.child.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(for_s)
        finally:
            self.child.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.child.proc.poll() is None:
            self.child.proc.send_signal(signal.SIGCONT)
        self.child.stop()
