"""One enforcer draining a pre-filled input topic; reports rate and memory.
Usage: python -m bench.enforcer_drain SERVERS INPUT_TOPIC PARTITIONS EVENTS

Each run writes to fresh output topics (changelog, revocations, audit) under its own prefix,
so repeated rounds over one input topic start from the same empty state."""

from __future__ import annotations

import gc
import sys
import time

import orjson

from bench.common import bench_topics, rss_bytes
from streams.enforcer.loop import EnforcerLoop
from streams.policy import default_policy


def main() -> None:
    servers, input_topic = sys.argv[1], sys.argv[2]
    partitions, total = int(sys.argv[3]), int(sys.argv[4])
    with bench_topics("drain", partitions) as fresh:
        settings = fresh.model_copy(update={"bootstrap_servers": servers, "log_level": "WARNING"})
        loop = EnforcerLoop(settings, default_policy())
        loop.topics.input = input_topic  # read the shared pre-filled input
        gc.collect()
        rss_empty = rss_bytes()
        loop.start()
        started = 0.0
        while loop.stats.events < total:
            before = time.perf_counter()
            if loop.step() and not started:
                started = before
        elapsed = time.perf_counter() - started
        gc.collect()
        live = sum(rt.enforcer.live_sessions() for rt in loop.parts.values())
        rss_full = rss_bytes()
        loop.close()
    result = {
        "events": loop.stats.events,
        "seconds": elapsed,
        "rate": loop.stats.events / elapsed,
        "live_sessions": live,
        "rss_empty": rss_empty,
        "rss_full": rss_full,
        "bytes_per_session": (rss_full - rss_empty) / max(live, 1),
        "batches": loop.stats.batches,
    }
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
