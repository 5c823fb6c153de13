"""Child processes (the drill's services, the benchmarks' and the tests'): stopping one, or a
whole tree of them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any


def stop_child(proc: subprocess.Popen[Any], timeout: float = 30) -> int:
    """SIGTERM (the clean shutdown every service of ours handles), then SIGKILL when it has not
    exited ``timeout`` s later; returns its exit code. A child that has exited is left as it is."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every living process below ``pid`` (children, theirs, ...), read from /proc; [] where
    there is no /proc."""
    parents: dict[int, list[int]] = {}
    for entry in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the command name (2nd field) may hold spaces and parentheses: split after it
            ppid = int(entry.read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it, even those that started sessions of their
    own (a hung benchmark or service must not outlive its caller). Each is stopped first, and
    the tree read again until it no longer grows, so none can start another meanwhile."""
    stopped: list[int] = []
    todo = [pid]
    while todo:
        for victim in todo:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(victim, signal.SIGSTOP)
            stopped.append(victim)
        todo = [p for p in descendants(pid) if p not in stopped]
    for victim in stopped:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)
