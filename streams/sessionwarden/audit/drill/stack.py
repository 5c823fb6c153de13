"""What the drill runs against, when it starts it itself: the enforcer and the PostgreSQL sink
as child processes (their logs under the drill's work directory), a throwaway PostgreSQL
cluster with a sandbox database, and the example service (examples/service/app.py) in this
process: a real RevocationListener feeding its middleware and browser stream, served by uvicorn
on 127.0.0.1 and a free port. Each weakening is an option of these targets, never a patch."""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Self

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.policy import Policy
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.sdk.publisher import AsyncAuthEventPublisher
from sessionwarden.sdk.push import PushHub
from sessionwarden.testing.children import stop_child
from sessionwarden.testing.serve import ServerThread

REPO = Path(__file__).resolve().parents[4]
EXAMPLE = REPO / "examples/service/app.py"


class StackError(RuntimeError):
    """A part of the drill's stack did not start."""


class Child:
    """``python <args>`` with the drill's environment, logging into ``log``."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._out: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **env}, cwd=REPO,
            stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"{self.name} exited {self.proc.returncode}; see {self.log}")
            if text in self.log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise StackError(f"{self.name} did not log {text!r} in {timeout:g}s; see {self.log}")

    def stop(self) -> None:
        stop_child(self.proc)
        self._out.close()


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
    child = Child("enforcer", ["-m", "sessionwarden", "enforce"], env, workdir / "enforcer.log")
    child.wait_for("partitions assigned", 90)
    return child


def start_sink(settings: Settings, policy_file: Path, workdir: Path, dsn: str) -> Child:
    env = child_env(settings, policy_file, SESSIONWARDEN_PG_DSN=dsn,
                    SESSIONWARDEN_PG_SINK_GROUP_ID=f"{settings.topics.prefix}pg-sink")  # fmt: skip
    child = Child(
        "postgres sink", ["-m", "sessionwarden", "sink", "postgres"], env, workdir / "sink.log"
    )
    child.wait_for("partitions assigned", 90)
    return child


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
        self.child = Child("frozen example service", args, env, workdir / "frozen-service.log")
        self.child.wait_for("listening on", 60)

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


def load_example() -> ModuleType:
    """examples/service/app.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("sessionwarden_example_app", EXAMPLE)
    if spec is None or spec.loader is None:
        raise StackError(f"cannot load the example service from {EXAMPLE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Service:
    """The example service on the settings' topics, in this process: a real RevocationListener
    (``listener``: more of its options) feeding a PushHub, served by uvicorn on 127.0.0.1 and
    ``port`` (0: a free one). ``publisher`` (on the input topic) makes ``/login`` real;
    ``unprotected`` and ``page_script`` are passed to its ``create_app`` (the weakened
    variants); ``session_key`` signs the sessions it issues (``issue()`` makes one; services
    given the same key accept each other's). ``revoked_at`` maps each session id to the wall
    time the listener applied its first revocation. A subclass that overrides
    ``on_revocation`` sees each record as it is applied."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        tenant: str,
        *,
        publisher: AsyncAuthEventPublisher | None = None,
        port: int = 0,
        listener: Mapping[str, Any] | None = None,
        session_key: bytes | None = None,
        **weakened: Any,
    ) -> None:
        example = load_example()
        self._example = example
        self.revoked_at: dict[str, float] = {}
        self.session_key = session_key if session_key is not None else secrets.token_bytes(32)
        self.tenant = tenant
        self.hub = PushHub()
        self.listener = RevocationListener.from_settings(
            settings, policy, on_revocation=self.on_revocation, **(listener or {})
        )
        self.hub.lookup = example.listener_lookup(self.listener)
        app = example.create_app(
            self.listener, self.hub, publisher, tenant, session_key=self.session_key, **weakened
        )
        self.server = ServerThread(app, port=port)

    def issue(self, user: str = "user") -> str:
        """A session id this service accepts as one it issued, from now until the listener's
        ``max_lifetime_s`` (the caller logs it in)."""
        issued: str = self._example.issue_session_id(self.session_key, user, self.tenant)
        return issued

    def on_revocation(self, record: Revocation) -> None:
        self.revoked_at.setdefault(record.session_id, time.time())
        self.hub.on_revocation(record)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Self:
        self.listener.start()
        if not self.listener.wait_ready(30):
            raise StackError("the service's revocation listener did not catch up in 30 s")
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.listener.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
