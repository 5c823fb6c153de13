"""Child processes (the drill's services, the benchmarks' and the tests'): stopping one."""

from __future__ import annotations

import subprocess
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
