"""Separate cores for the broker and for the system under test during the throughput rounds.

On a two-core machine the broker and the process being measured otherwise take turns on both
cores, and how the scheduler mixes them changes from round to round. Pinned, the broker (every
thread of its JVM) runs on one core and the driver on the other; every process the driver starts
afterwards (ceiling, enforcer, faust agent, Kafka Streams, Quix Streams) inherits that core, so
each system measured gets the same single core beside the same broker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def listener_pid(port: int, proc: Path = Path("/proc")) -> int | None:
    """The process holding a listening TCP socket on ``port``, or None."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        path = proc / "net" / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (pid_dir / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(pid_dir.name)
    return None


def _set_all_threads(pid: int, cpus: set[int]) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread may end meanwhile
            os.sched_setaffinity(int(task.name), cpus)


@contextlib.contextmanager
def pinned(broker_port: int) -> Iterator[str]:
    """Broker on the first core, this process (and what it starts) on the second; both back on
    every core afterwards. Yields what was done, for the report."""
    cpus = sorted(os.sched_getaffinity(0))
    broker = listener_pid(broker_port)
    if len(cpus) < 2 or broker is None:
        why = "fewer than 2 cores" if len(cpus) < 2 else "the broker's process was not found"
        yield f"not pinned ({why})"
        return
    everything = set(cpus)
    _set_all_threads(broker, {cpus[0]})
    os.sched_setaffinity(0, {cpus[1]})
    try:
        yield (
            f"pinned: broker (pid {broker}) on CPU {cpus[0]}, each system measured on CPU {cpus[1]}"
        )
    finally:
        os.sched_setaffinity(0, everything)
        with contextlib.suppress(OSError):
            _set_all_threads(broker, everything)
