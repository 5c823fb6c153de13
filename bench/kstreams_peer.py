"""The Kafka Streams peer (bench/kstreams/, Java 17): build it with Maven, run it on a topic.

    python -m bench.kstreams_peer SERVERS INPUT REVOCATIONS EVENTS [POLICY.toml]

drains INPUT (EVENTS records) in a fresh application id and prints one JSON result line
(events/s, RSS of the JVM, live sessions); its internal topics are deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
from confluent_kafka.admin import AdminClient

from bench.peer_policy import write_policy_json

PROJECT = Path(__file__).resolve().parent / "kstreams"
JAR = PROJECT / "target" / "kstreams-peer.jar"
JVM_OPTS = ["-Xms256m", "-Xmx1g", "-XX:+UseG1GC"]


def build() -> Path:
    """`mvn package` when the jar is missing or older than a source file."""
    sources = [PROJECT / "pom.xml", *PROJECT.glob("src/**/*.java")]
    if JAR.exists() and JAR.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return JAR
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit("Maven (mvn) is needed for the Kafka Streams peer: apt-get install maven")
    subprocess.run([mvn, "-B", "-q", "package"], cwd=PROJECT, check=True)
    return JAR


def command(
    mode: str, servers: str, app_id: str, input_topic: str, revocations: str, policy_json: Path
) -> list[str]:
    java = shutil.which("java") or "java"
    args = [mode, servers, app_id, input_topic, revocations, str(policy_json)]
    return [java, *JVM_OPTS, "-jar", str(build()), *args]


@contextlib.contextmanager
def policy_json(policy_file: Path | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="peer-policy-") as tmp:
        yield write_policy_json(policy_file, Path(tmp) / "policy.json")


def delete_internal_topics(servers: str, app_id: str) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(app_id)]
    for fut in (admin.delete_topics(names, operation_timeout=60) if names else {}).values():
        with contextlib.suppress(Exception):
            fut.result(60)


def drain(
    servers: str, input_topic: str, revocations: str, total: int, policy_file: Path | None = None
) -> dict[str, float]:
    app_id = f"bench-kstreams-{uuid.uuid4().hex[:6]}"
    with policy_json(policy_file) as pj:
        try:
            proc = subprocess.run(
                [*command("drain", servers, app_id, input_topic, revocations, pj), str(total)],
                capture_output=True,
                text=True,
                timeout=1800,
                env={**os.environ, "KSTREAMS_THREADS": os.environ.get("KSTREAMS_THREADS", "1")},
            )
        finally:
            delete_internal_topics(servers, app_id)
    if proc.returncode != 0:
        raise RuntimeError(f"kstreams peer failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, float] = orjson.loads(proc.stdout.strip().splitlines()[-1])
    return result


class PeerProcess:
    """A peer in serve mode until stopped (for the seeded check and the latency run): it
    prints "running" once it consumes; stopping it deletes its internal topics."""

    name = "peer"

    def __init__(self, args: list[str], servers: str, group_id: str, topics_prefix: str) -> None:
        self.servers = servers
        self.group_id = group_id
        self._topics_prefix = topics_prefix
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=PROJECT.parent.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_assigned(self) -> None:
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "running":
            raise RuntimeError(f"{self.name} did not start (exit {self.proc.poll()})")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        delete_internal_topics(self.servers, self._topics_prefix)

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class KStreamsProcess(PeerProcess):
    name = "kstreams peer"

    def __init__(self, servers: str, input_topic: str, revocations: str, policy_file: Path) -> None:
        app_id = f"bench-kstreams-{uuid.uuid4().hex[:6]}"
        self._policy = policy_json(policy_file)
        pj = self._policy.__enter__()
        args = command("serve", servers, app_id, input_topic, revocations, pj)
        super().__init__(args, servers, app_id, app_id)

    def stop(self) -> None:
        super().stop()
        self._policy.__exit__(None, None, None)


def main() -> None:
    servers, input_topic, revocations, total = sys.argv[1:5]
    policy_file = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    result = drain(servers, input_topic, revocations, int(total), policy_file)
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
