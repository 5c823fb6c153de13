"""The Kafka Streams peer (bench/kstreams/, Java 17): build it with Maven, run it on a topic.

    python -m bench.kstreams_peer SERVERS INPUT REVOCATIONS EVENTS [POLICY.toml]

drains INPUT (EVENTS records) in a fresh application id and prints one JSON result line
(events/s, RSS of the JVM, live sessions); its internal topics are deleted afterwards.
Running it, its policy JSON and its clean-up are bench/peer_process.py's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.peer_process import PeerProcess, cli

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


class KStreamsProcess(PeerProcess):
    """The job of bench/kstreams/ (threads: KSTREAMS_THREADS, 1 when unset); its internal
    topics start with its application id."""

    name = "kstreams peer"
    group_prefix = "bench-kstreams"

    @classmethod
    def launcher(cls) -> list[str]:
        return [shutil.which("java") or "java", *JVM_OPTS, "-jar", str(build())]


if __name__ == "__main__":
    cli(KStreamsProcess)
