"""Stopping a child process: the tests, the benchmarks and the drill rely on it to clean up."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sessionwarden.testing.children import Child, ChildFailed, descendants, kill_tree, stop_child
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


def test_a_child_is_ready_once_it_says_its_ready_line() -> None:
    """Tests, benchmarks and the drill start a service and wait for its ready line, once."""
    code = (
        "import time\nprint('starting', flush=True)\ntime.sleep(0.3)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    child = Child([sys.executable, "-c", code], name="slow starter", watch="stdout")
    try:
        child.wait_for("ready", 30)
        assert ["starting", "ready"] == child.lines
    finally:
        assert -signal.SIGTERM == child.stop()


def test_a_child_that_exits_before_its_ready_line_fails_with_its_last_lines() -> None:
    """A service that dies at start is reported at once, with what it said, not at a timeout."""
    code = "import sys\nprint('no broker', file=sys.stderr, flush=True)\nsys.exit(3)\n"
    child = Child([sys.executable, "-c", code], name="crasher")
    with pytest.raises(ChildFailed) as failed:
        child.wait_for("ready", 60)
    assert ("crasher exited 3", "no broker") == (
        str(failed.value).splitlines()[0],
        str(failed.value).splitlines()[-1],
    )


def test_a_child_that_never_says_its_ready_line_fails_at_the_deadline() -> None:
    """A service that hangs at start fails the wait after its timeout, never later."""
    child = Child([sys.executable, "-c", "import time\ntime.sleep(60)\n"], name="sleeper")
    try:
        with pytest.raises(ChildFailed, match=r"sleeper did not say 'ready' in 0\.3s"):
            child.wait_for("ready", 0.3)
    finally:
        child.stop()


def test_a_childs_output_goes_to_its_log_and_an_unset_variable_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drill keeps each child's output in a file; a benchmark drops a variable it must not
    inherit (the policy file, so the child uses the shipped one)."""
    monkeypatch.setenv("SESSIONWARDEN_CHILD_TEST", "inherited")
    code = "import os\nprint(os.environ.get('SESSIONWARDEN_CHILD_TEST', 'unset'), flush=True)\n"
    log = tmp_path / "child.log"
    env = {"SESSIONWARDEN_CHILD_TEST": None}
    child = Child([sys.executable, "-c", code], env, watch="both", log=log)
    assert 0 == child.wait_exit(30)
    assert (["unset"], "unset\n") == (child.lines, log.read_text())
