"""Child processes (the drill's services, the benchmarks' and the tests'): starting one and
waiting for its ready line, stopping one, or a whole tree of them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

# Where a child's stderr goes, by (what is watched, whether stderr is discarded).
_STDERR: dict[tuple[str, bool], int | None] = {
    ("stderr", False): subprocess.PIPE,
    ("stderr", True): subprocess.PIPE,
    ("both", False): subprocess.STDOUT,
    ("both", True): subprocess.STDOUT,
    ("stdout", False): None,
    ("stdout", True): subprocess.DEVNULL,
}


class ChildFailed(AssertionError):
    """A child exited, or did not say what it was waited for in time. An AssertionError: in a
    test it is the test's failure, with the child's last lines."""


class Child:
    """``args`` in a subprocess with ``env`` over this process's environment (a None value
    unsets that variable), one stream of its
    output (``watch``: stderr, stdout, or both merged) read line by line by a thread into
    ``lines``, and copied to ``log`` when one is given. ``stdin=True`` gives it a pipe that
    ``stop`` closes first (a child that runs until its input ends). Watching stdout, its stderr
    goes to this process's unless ``discard_stderr``."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str | None] | None = None,
        *,
        name: str = "child",
        cwd: Path | None = None,
        watch: Literal["stderr", "stdout", "both"] = "stderr",
        log: Path | None = None,
        stdin: bool = False,
        discard_stderr: bool = False,
    ) -> None:
        self.name, self.log_file = name, log
        self.lines: list[str] = []
        self._copy: IO[str] | None = log.open("a") if log is not None else None
        self.proc = subprocess.Popen(
            args,
            env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
            cwd=cwd,
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.DEVNULL if watch == "stderr" else subprocess.PIPE,
            stderr=_STDERR[watch, discard_stderr],
            text=True,
        )
        stream = self.proc.stderr if watch == "stderr" else self.proc.stdout
        assert stream is not None
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self.lines.append(line.rstrip("\n"))
                if self._copy is not None:
                    self._copy.write(line)
                    self._copy.flush()
        finally:
            if self._copy is not None:
                self._copy.close()

    def tail(self, count: int = 40) -> str:
        """Its last output lines (where it says where its whole log went)."""
        where = f" (whole log: {self.log_file})" if self.log_file is not None else ""
        return f"{self.name}'s last lines{where}:\n" + "\n".join(self.lines[-count:])

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def check_running(self) -> None:
        """Raise ChildFailed if it has exited."""
        if self.proc.poll() is not None:
            raise ChildFailed(f"{self.name} exited {self.proc.returncode}\n{self.tail()}")

    def wait_for(self, ready: str | Callable[[], bool], timeout: float) -> None:
        """Wait until a line of its output holds ``ready`` (its ready line), or until ``ready()``
        is true; ChildFailed when it exits first or ``timeout`` s pass."""
        is_ready = ready if callable(ready) else partial(self.said, ready)
        deadline = time.monotonic() + timeout
        while not is_ready():
            self.check_running()
            if time.monotonic() > deadline:
                what = ready if isinstance(ready, str) else "it was ready"
                raise ChildFailed(
                    f"{self.name} did not say {what!r} in {timeout:g}s\n{self.tail()}"
                )
            time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int:
        """Wait for it to exit by itself, and for its whole output to be read."""
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """Close its input (if it has a pipe), then ``stop_child``; returns its exit code."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        code = stop_child(self.proc, timeout)
        self._reader.join(5)
        return code


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
