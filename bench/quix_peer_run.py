"""Runs the Quix Streams peer (bench/quix_peer.py) in its own venv, bench/.venv-quix.

    python -m bench.quix_peer_run SERVERS INPUT REVOCATIONS EVENTS [POLICY.toml]

drains INPUT (EVENTS records) under a fresh consumer group and prints one JSON result line;
the peer's changelog topics are deleted afterwards. Running it, its policy JSON and its
clean-up are bench/peer_process.py's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import REPO
from bench.peer_process import PeerProcess, cli

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


class QuixProcess(PeerProcess):
    name = "quix peer"
    group_prefix = "bench-quix"

    @classmethod
    def launcher(cls) -> list[str]:
        return [str(ensure_venv()), str(SCRIPT)]

    @classmethod
    def internal_topics(cls, group: str) -> str:
        return CHANGELOGS + group


if __name__ == "__main__":
    cli(QuixProcess)
