"""How the benchmark runs a peer of the enforcer (bench/kstreams_peer.py, bench/quix_peer_run.py).

A peer says only which program runs its job (`PeerProcess.launcher`) and where its internal
topics are; this module hands it our policy as JSON (bench/peer_policy.py) in a temporary file,
runs it in drain mode (`PeerProcess.drain`) or in serve mode until stopped (a `PeerProcess`),
and deletes its internal topics afterwards. Each peer module's command line is `cli`:

    python -m bench.<peer module> SERVERS INPUT REVOCATIONS EVENTS [POLICY.toml]
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
from confluent_kafka.admin import AdminClient

from bench.common import REPO
from bench.peer_policy import write_policy_json
from sessionwarden.kafka.topics import delete_topics
from sessionwarden.testing.children import Child, ChildFailed


@contextlib.contextmanager
def policy_json(policy_file: Path | None) -> Iterator[Path]:
    """The policy's timeout table as JSON in a temporary file (the default policy for None)."""
    with tempfile.TemporaryDirectory(prefix="peer-policy-") as tmp:
        yield write_policy_json(policy_file, Path(tmp) / "policy.json")


def delete_internal_topics(servers: str, prefix: str) -> None:
    delete_topics(AdminClient({"bootstrap.servers": servers}), prefix=prefix, timeout=60)


class PeerProcess:
    """A peer in serve mode until stopped (for the seeded check and the latency run): it
    prints "running" once it consumes; stopping it deletes its internal topics and its policy
    file. Subclasses name the peer and its program."""

    name = "peer"
    group_prefix = "bench-peer"

    @classmethod
    def launcher(cls) -> list[str]:
        """The program that runs the peer's job (built or installed when missing)."""
        raise NotImplementedError

    @classmethod
    def command(
        cls, mode: str, servers: str, group: str, input_topic: str, revocations: str, pj: Path
    ) -> list[str]:
        """The job's command line for `mode` ("drain" or "serve") under consumer group (or
        application id) `group`, reading the policy JSON at `pj`; both peers take the same."""
        return [*cls.launcher(), mode, servers, group, input_topic, revocations, str(pj)]

    @classmethod
    def internal_topics(cls, group: str) -> str:
        """The prefix of the topics the peer creates for itself under `group`."""
        return group

    @classmethod
    def new_group(cls) -> str:
        return f"{cls.group_prefix}-{uuid.uuid4().hex[:6]}"

    @classmethod
    def drain(
        cls,
        servers: str,
        input_topic: str,
        revocations: str,
        total: int,
        policy_file: Path | None = None,
    ) -> dict[str, float]:
        """Drain `input_topic` (`total` records) under a fresh group: the peer's JSON result
        (events/s, RSS, live sessions)."""
        group = cls.new_group()
        with policy_json(policy_file) as pj:
            args = [*cls.command("drain", servers, group, input_topic, revocations, pj), str(total)]
            try:
                proc = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=REPO)
            finally:
                delete_internal_topics(servers, cls.internal_topics(group))
        if proc.returncode != 0:
            raise RuntimeError(f"{cls.name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result: dict[str, float] = orjson.loads(proc.stdout.strip().splitlines()[-1])
        return result

    def __init__(
        self, servers: str, input_topic: str, revocations: str, policy_file: Path | None
    ) -> None:
        self.servers = servers
        self.group_id = self.new_group()
        self._policy = contextlib.ExitStack()
        pj = self._policy.enter_context(policy_json(policy_file))
        try:
            args = self.command("serve", servers, self.group_id, input_topic, revocations, pj)
            self.child = Child(args, {"PYTHONUNBUFFERED": "1"}, name=self.name, cwd=REPO,
                               watch="stdout", discard_stderr=True)  # fmt: skip
            self.proc = self.child.proc
        except BaseException:
            self._policy.close()
            raise

    def wait_assigned(self, timeout: float = 600) -> None:
        try:
            self.child.wait_for("running", timeout)
        except ChildFailed as e:
            raise RuntimeError(f"{self.name} did not start: {e}") from None

    def stop(self) -> None:
        self.child.stop(60)
        try:
            delete_internal_topics(self.servers, self.internal_topics(self.group_id))
        finally:
            self._policy.close()

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cli(peer: type[PeerProcess]) -> None:
    """`SERVERS INPUT REVOCATIONS EVENTS [POLICY.toml]`: one drain, its JSON result printed."""
    servers, input_topic, revocations, total = sys.argv[1:5]
    policy_file = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    result = peer.drain(servers, input_topic, revocations, int(total), policy_file)
    print(orjson.dumps(result).decode(), flush=True)
