"""One enforcer draining a pre-filled input topic; reports rate and memory.
Usage: python -m bench.enforcer_drain SERVERS PREFIX PARTITIONS EVENTS [GROUP_SUFFIX]"""

from __future__ import annotations

import gc
import sys
import time

import orjson

from bench.common import rss_bytes
from streams.enforcer.loop import EnforcerLoop
from streams.policy import default_policy
from streams.settings import load_settings


def main() -> None:
    servers, prefix = sys.argv[1], sys.argv[2]
    partitions, total = int(sys.argv[3]), int(sys.argv[4])
    suffix = sys.argv[5] if len(sys.argv) > 5 else "0"
    settings = load_settings(
        bootstrap_servers=servers,
        topic_prefix=prefix,
        partitions=partitions,
        group_id=f"{prefix}enforcer-{suffix}",
        instance_id=suffix,
        log_level="WARNING",
    )
    loop = EnforcerLoop(settings, default_policy())
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
    loop.close()
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
