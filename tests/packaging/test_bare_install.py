"""`pip install sessionwarden` without extras: the wheel installs the SDK alone, and the
command line names the extra a processor needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("sdk_in_bare_install.py")
PIP_TIMEOUT_S = 900


def _run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run outside the checkout: no PYTHONPATH, so only what the wheel installed is found."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=PIP_TIMEOUT_S,
    )  # fmt: skip


def _ok(run: subprocess.CompletedProcess[str]) -> str:
    assert 0 == run.returncode, f"{run.args}\n{run.stdout}\n{run.stderr}"
    return run.stdout


def test_the_bare_wheel_installs_the_sdk_without_the_processors_dependencies(
    tmp_path: Path,
) -> None:
    """A service that imports the SDK must not pull faust, matplotlib or aiohttp, and must not
    get the generic top-level names `streams` and `schemas`."""
    started = time.monotonic()
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside it
    shutil.copytree(
        REPO / "streams", source / "streams", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    _ok(_run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist",
             source, cwd=tmp_path))  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("sessionwarden-*.whl")
    built = time.monotonic()
    _ok(_run(sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv", cwd=tmp_path))
    python = tmp_path / "venv" / "bin" / "python"
    _ok(_run(sys.executable, "-m", "pip", "--python", python, "install", "-q",
             "--disable-pip-version-check", "--no-compile", wheel, cwd=tmp_path))  # fmt: skip

    installed = time.monotonic()
    probe = _run(python, PROBE, cwd=tmp_path)
    command = tmp_path / "venv" / "bin" / "sessionwarden"
    detect = _run(command, "detect", cwd=tmp_path)
    helped = _run(command, "--help", cwd=tmp_path)
    policy = _run(command, "policy", "check", cwd=tmp_path)
    print(
        f"wheel built in {built - started:.1f}s, installed in {installed - built:.1f}s, "
        f"probed in {time.monotonic() - installed:.1f}s"
    )

    assert "middleware: revoked 401, live 200" in _ok(probe)
    assert (2, "") == (detect.returncode, detect.stdout)
    assert (
        "sessionwarden detect needs the 'server' extra (faust is not installed): "
        "pip install 'sessionwarden[server]'\n"
    ) == detect.stderr
    assert "drill" in _ok(helped)
    assert "policy: default" in _ok(policy)
