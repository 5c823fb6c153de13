"""Sessionwarden's own services in subprocesses (``python -m sessionwarden enforce`` and the
others), for the tests and the benchmarks: started with one shared environment, their JSON log
lines collected, ready once they log their partitions assigned, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import orjson

from sessionwarden.config.settings import Settings
from sessionwarden.testing.children import Child, ChildFailed
from sessionwarden.testing.waiting import wait_until


@dataclass(frozen=True)
class Endpoint:
    """A process's metrics server: its base URL and the bearer token every request needs."""

    base: str
    token: str


class ServiceProcess(Child):
    """A Sessionwarden service in a subprocess (``python <args>``), its log lines (stderr)
    collected, stopped with SIGTERM."""

    name = "service"
    ready_message = ""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        super().__init__([sys.executable, *args], env, name=self.name, cwd=cwd)

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
            self.check_running()
            return None

        found: Endpoint = wait_until(bound, timeout, f"the {self.name}'s metrics server")
        return found

    def is_ready(self) -> bool:
        return self.said(self.ready_message)

    def wait_assigned(self, timeout: float = 60) -> None:
        try:
            self.wait_for(self.is_ready, timeout)
        except ChildFailed as e:
            raise ChildFailed(f"the {self.name} was not assigned partitions: {e}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EnforcerProcess(ServiceProcess):
    """`sessionwarden enforce` in a subprocess."""

    name = "enforcer"
    ready_message = "partitions assigned"

    def __init__(
        self,
        settings: Settings,
        instance_id: str = "0",
        *,
        policy: Path,
        cwd: Path | None = None,
        **env: str,
    ) -> None:
        super().__init__(
            ["-m", "sessionwarden", "enforce"],
            {
                **service_env(settings, policy),
                "SESSIONWARDEN_GROUP_ID": settings.enforcer.group_id,
                "SESSIONWARDEN_INSTANCE_ID": instance_id,
                "SESSIONWARDEN_TRANSACTION_TIMEOUT_MS": "5000",
                "SESSIONWARDEN_SESSION_TIMEOUT_MS": "3000",
                **env,
            },
            cwd,
        )


class SinkProcess(ServiceProcess):
    """`sessionwarden sink postgres` in a subprocess, writing into ``dsn`` (the sink role's)."""

    name = "postgres sink"
    ready_message = "partitions assigned"

    def __init__(
        self, settings: Settings, dsn: str, policy: Path, cwd: Path | None = None, **env: str
    ) -> None:
        super().__init__(
            ["-m", "sessionwarden", "sink", "postgres"],
            {
                **service_env(settings, policy),
                "SESSIONWARDEN_PG_DSN": dsn,
                "SESSIONWARDEN_PG_SINK_GROUP_ID": f"{settings.topics.prefix}pg-sink",
                "SESSIONWARDEN_SESSION_TIMEOUT_MS": "3000",
                **env,
            },
            cwd,
        )


class IdpKeycloakProcess(ServiceProcess):
    """`sessionwarden idp keycloak` in a subprocess; ``keycloak`` holds its keycloak_*
    settings as environment variables (``SESSIONWARDEN_KEYCLOAK_URL`` ...)."""

    name = "keycloak actuator"
    ready_message = "idp actuator starting"

    def __init__(
        self, settings: Settings, policy: Path, cwd: Path | None = None, **env: str
    ) -> None:
        super().__init__(
            ["-m", "sessionwarden", "idp", "keycloak"],
            {
                **service_env(settings, policy),
                "SESSIONWARDEN_KEYCLOAK_GROUP_ID": f"{settings.enforcer.group_id}-idp",
                **env,
            },
            cwd,
        )


def service_env(settings: Settings, policy: Path) -> dict[str, str]:
    """The environment every service of one test shares."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SESSIONWARDEN_TOPIC_PREFIX": settings.topics.prefix,
        "SESSIONWARDEN_PARTITIONS": str(settings.kafka.partitions),
        "SESSIONWARDEN_POLICY_FILE": str(policy),
        "SESSIONWARDEN_LOG_SALT": "test-salt",
        "SESSIONWARDEN_LOG_FORMAT": "json",
        # A free port each: tests (and other checkouts) run several services at once.
        "SESSIONWARDEN_ENFORCER_METRICS_PORT": "0",
        "SESSIONWARDEN_DETECT_METRICS_PORT": "0",
        "SESSIONWARDEN_SINK_METRICS_PORT": "0",
        "SESSIONWARDEN_DASHBOARD_METRICS_PORT": "0",
        "SESSIONWARDEN_SSF_TX_METRICS_PORT": "0",
        "SESSIONWARDEN_IDP_METRICS_PORT": "0",
        # Generated metrics tokens go beside the test's files, not into the working directory.
        "SESSIONWARDEN_METRICS_TOKEN_DIR": str(settings.metrics.token_dir or tempfile.gettempdir()),
    }


class TransmitterProcess(ServiceProcess):
    """`sessionwarden ssf transmit` in a subprocess on ``port`` (its issuer is
    ``http://127.0.0.1:<port>``), its state in ``state_dir``; ready once it serves and its
    Kafka reader has its partitions."""

    name = "ssf transmitter"

    def __init__(
        self,
        settings: Settings,
        *,
        port: int,
        state_dir: Path,
        key_file: Path,
        token_file: Path,
        policy: Path,
        cwd: Path | None = None,
        **env: str,
    ) -> None:
        self.base = f"http://127.0.0.1:{port}"
        super().__init__(
            ["-m", "sessionwarden", "ssf", "transmit"],
            {
                **service_env(settings, policy),
                "SESSIONWARDEN_GROUP_ID": settings.enforcer.group_id,
                "SESSIONWARDEN_SESSION_TIMEOUT_MS": "3000",
                "SESSIONWARDEN_SSF_TX_PORT": str(port),
                "SESSIONWARDEN_SSF_TX_ISSUER": self.base,
                "SESSIONWARDEN_SSF_TX_STATE_DIR": str(state_dir),
                "SESSIONWARDEN_SSF_TX_SIGNING_KEY_FILE": str(key_file),
                "SESSIONWARDEN_SSF_TX_TOKEN_FILE": str(token_file),
                # The tests' push receivers listen on loopback.
                "SESSIONWARDEN_SSF_TX_ALLOW_PRIVATE_PUSH": "true",
                **env,
            },
            cwd,
        )

    def is_ready(self) -> bool:
        return self.said("ssf transmitter serving") and self.said("partitions assigned")


class SsfReceiverProcess(ServiceProcess):
    """`sessionwarden ssf receive` in a subprocess; ready once its push endpoint listens."""

    name = "ssf receiver"
    ready_message = "ssf receiver serving"

    def push_url(self) -> str:
        for doc in self.messages():
            if doc.get("msg") == "ssf receiver serving":
                return f"http://{doc['host']}:{doc['port']}{doc['path']}"
        raise ChildFailed("the ssf receiver has not said where it listens")
