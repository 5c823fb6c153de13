"""How the enforcer's cost per event grows with its live state, without Kafka: the decisions
and their encoding (decode, apply, changelog and output encoding, commit) in one process, in
batches of 1,000 events, with the cyclic collector's passes timed by generation.

    python -m bench.state_growth SESSIONS [--gc default|frozen|off] [--window 100000]

The traffic is bench.common.fill_mixed's: SESSIONS logins, then SESSIONS activities over random
live sessions. Each window of events prints its logins or activities per second (process CPU
time) and the live sessions; the summary gives the collector's time per generation, the
collections, and RSS per live session. ``frozen`` moves everything alive into the permanent
generation (``gc.freeze()``) after every window, as a long-running enforcer could do once
restored state and each grown share of it are in place; ``off`` disables the collector (the
upper bound of what any tuning of it could win)."""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Iterator
from typing import Any

import orjson

from bench.common import mixed_docs, rss_bytes
from sessionwarden.contracts.codec import decode_auth_event, encode_dict
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.loop import GC_GEN0_THRESHOLD
from sessionwarden.policy import default_policy

BATCH = 1_000


class GcTimer:
    """Seconds spent in the cyclic collector, per generation, while ``timing`` is on."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.passes = [0, 0, 0]
        self.timing = False
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if not self.timing:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            gen = info["generation"]
            self.seconds[gen] += time.perf_counter() - self._started
            self.passes[gen] += 1


def traffic(sessions: int) -> Iterator[tuple[str, list[bytes]]]:
    """Batches of encoded events of ``mixed_docs``: the logins, then as many activities."""
    batch: list[bytes] = []
    for doc in mixed_docs(sessions, sessions):
        batch.append(encode_dict(doc))
        if len(batch) == BATCH:
            yield doc["type"], batch
            batch = []
    if batch:
        yield "activity", batch


def run(sessions: int, mode: str, window: int) -> dict[str, Any]:
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)  # the enforcer's thresholds (loop.py)
    if mode == "off":
        gc.disable()
    enforcer = PartitionEnforcer(default_policy())
    state = enforcer.state
    timer = GcTimer()
    gc.collect()
    rss_empty = rss_bytes()
    windows: list[dict[str, Any]] = []
    cpu = seen = 0.0
    kind_of_window = "login"
    changelog_bytes = records = 0
    now = time.time()
    for kind, batch in traffic(sessions):
        if kind != kind_of_window and seen:
            windows.append(_window(kind_of_window, seen, cpu, state.live_sessions(), timer))
            cpu = seen = 0.0
        kind_of_window = kind
        timer.timing = True
        started = time.process_time()
        state.begin()
        for value in batch:
            enforcer.apply(decode_auth_event(value), now, now)
        for _key, encoded in state.changelog():
            changelog_bytes += len(encoded) if encoded else 0
            records += 1
        for emit in state.out:
            encode_dict(emit.value)
            records += 1
        state.commit()
        state.take_outputs()
        cpu += time.process_time() - started
        timer.timing = False
        seen += len(batch)
        if seen >= window:
            windows.append(_window(kind, seen, cpu, state.live_sessions(), timer))
            cpu = seen = 0.0
            if mode == "frozen":
                gc.freeze()
    if seen:
        windows.append(_window(kind_of_window, seen, cpu, state.live_sessions(), timer))
    gc.enable()
    gc.collect()
    live = state.live_sessions()
    return {
        "sessions": sessions,
        "gc": mode,
        "windows": windows,
        "gc_seconds": timer.seconds,
        "gc_passes": timer.passes,
        "gc_objects": len(gc.get_objects()),
        "records_per_input": records / (2 * sessions),
        "changelog_bytes_per_record": changelog_bytes / max(1, records),
        "bytes_per_session": (rss_bytes() - rss_empty) / max(1, live),
        "live_sessions": live,
    }


def _window(kind: str, seen: float, cpu: float, live: int, timer: GcTimer) -> dict[str, Any]:
    row = {
        "kind": kind,
        "events": int(seen),
        "rate": seen / cpu,
        "live": live,
        "gc_s": [round(s, 3) for s in timer.seconds],
    }
    print(orjson.dumps(row).decode(), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sessions", type=int)
    parser.add_argument("--gc", choices=("default", "frozen", "off"), default="default")
    parser.add_argument("--window", type=int, default=100_000)
    args = parser.parse_args()
    result = run(args.sessions, args.gc, args.window)
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
