"""Stopping a child process: the tests, the benchmarks and the drill rely on it to clean up."""

from __future__ import annotations

import signal
import subprocess
import sys

from sessionwarden.testing.children import descendants, kill_tree, stop_child
from tests.integration.harness import wait_until

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


SPAWNS_A_DETACHED_GRANDCHILD = (
    "import subprocess, sys, time\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
    " start_new_session=True)\n"
    "print('ready', g.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_kill_tree_takes_the_child_and_a_grandchild_in_a_session_of_its_own() -> None:
    """A hung benchmark child's workers must not outlive it, even those that left its group."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SPAWNS_A_DETACHED_GRANDCHILD], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    word, grandchild = proc.stdout.readline().split()
    assert "ready" == word
    assert [int(grandchild)] == descendants(proc.pid)
    kill_tree(proc.pid)
    assert -signal.SIGKILL == proc.wait(10)
    wait_until(lambda: not alive(int(grandchild)), 10, "the grandchild to die")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a killed orphan is reaped by init; a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
