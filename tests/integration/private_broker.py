"""A broker of a test's own (free ports, temporary home), for tests that must freeze or stop
one: the shared broker is never touched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.harness import REPO


def _free_port_pair() -> int:
    """A port whose successor is free too (the broker's controller listens on port + 1)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return int(port)
    raise RuntimeError("no free pair of ports")


class PrivateBroker:
    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.bootstrap_servers = f"127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return int((self.home / "broker.pid").read_text().strip())

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and every request hangs, as with a hung broker."""
        os.killpg(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)


@contextmanager
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    port = _free_port_pair()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update({"SESSIONWARDEN_HOME": str(tmp_path / "kafka"), "KAFKA_PORT": str(port)})
    script = [sys.executable, str(REPO / "infra/kafka/broker.py")]
    broker = PrivateBroker(tmp_path / "kafka", port)
    up = subprocess.run([*script, "up"], env=env, capture_output=True, text=True, timeout=180)
    try:
        assert 0 == up.returncode, up.stdout + up.stderr
        yield broker
    finally:
        if (broker.home / "broker.pid").exists():
            broker.thaw()
        subprocess.run([*script, "down"], env=env, capture_output=True, timeout=120)
