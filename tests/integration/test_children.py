"""Stopping a child process: the tests, the benchmarks and the drill rely on it to clean up."""

from __future__ import annotations

import signal
import subprocess
import sys

from streams.children import stop_child

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "ready" == proc.stdout.readline().strip()
    return proc


def test_a_child_stops_on_sigterm_within_its_grace_period() -> None:
    """A service that shuts down cleanly is not killed: its exit code is SIGTERM's."""
    proc = start("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    assert -signal.SIGTERM == stop_child(proc, timeout=30)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    """A hung child must not outlive the run that started it."""
    proc = start(IGNORES_SIGTERM)
    assert -signal.SIGKILL == stop_child(proc, timeout=0.5)


def test_a_child_that_has_exited_keeps_its_exit_code() -> None:
    """Stopping twice, or after a crash, reports what the child itself returned."""
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(30)
    assert 3 == stop_child(proc) == stop_child(proc)
