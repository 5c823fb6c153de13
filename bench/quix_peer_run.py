"""Runs the Quix Streams peer (bench/quix_peer.py) in its own venv, bench/.venv-quix.

    python -m bench.quix_peer_run SERVERS INPUT REVOCATIONS EVENTS [POLICY.toml]

drains INPUT (EVENTS records) under a fresh consumer group and prints one JSON result line;
the peer's changelog topics are deleted afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson

from bench.common import REPO
from bench.kstreams_peer import PeerProcess, delete_internal_topics, policy_json

VENV = REPO / "bench" / ".venv-quix"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = REPO / "bench" / "quix-requirements.txt"
SCRIPT = REPO / "bench" / "quix_peer.py"


def ensure_venv() -> Path:
    """Create the venv when missing (`make bench` does it too); Quix Streams' pins exclude
    ours (pydantic-settings), so it cannot share the project's venv."""
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.stat().st_mtime >= REQUIREMENTS.stat().st_mtime:
        return PYTHON
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.touch()
    return PYTHON


CHANGELOGS = "changelog__"
"""Quix Streams names its changelog topics changelog__<group>--<topic>--<store>."""


def drain(
    servers: str, input_topic: str, revocations: str, total: int, policy_file: Path | None = None
) -> dict[str, float]:
    group = f"bench-quix-{uuid.uuid4().hex[:6]}"
    with policy_json(policy_file) as pj:
        args = ["drain", servers, group, input_topic, revocations, str(pj), str(total)]
        try:
            proc = subprocess.run(
                [str(ensure_venv()), str(SCRIPT), *args],
                capture_output=True,
                text=True,
                timeout=1800,
                cwd=REPO,
            )
        finally:
            delete_internal_topics(servers, CHANGELOGS + group)
    if proc.returncode != 0:
        raise RuntimeError(f"quix peer failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, float] = orjson.loads(proc.stdout.strip().splitlines()[-1])
    return result


class QuixProcess(PeerProcess):
    name = "quix peer"

    def __init__(self, servers: str, input_topic: str, revocations: str, policy_file: Path) -> None:
        group = f"bench-quix-{uuid.uuid4().hex[:6]}"
        self._policy = policy_json(policy_file)
        pj = self._policy.__enter__()
        args = ["serve", servers, group, input_topic, revocations, str(pj)]
        super().__init__(
            [str(ensure_venv()), str(SCRIPT), *args], servers, group, CHANGELOGS + group
        )

    def stop(self) -> None:
        super().stop()
        self._policy.__exit__(None, None, None)


def main() -> None:
    servers, input_topic, revocations, total = sys.argv[1:5]
    policy_file = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    print(orjson.dumps(drain(servers, input_topic, revocations, int(total), policy_file)).decode())


if __name__ == "__main__":
    main()
