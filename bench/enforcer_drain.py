"""One enforcer draining a pre-filled input topic; reports rate and memory.
Usage: python -m bench.enforcer_drain SERVERS INPUT_TOPIC PARTITIONS EVENTS [METRICS]

METRICS is "off" (the default: no observer) or "on" (Prometheus metrics on a free port,
scraped every second from a thread, as a Prometheus server would).

Each run writes to fresh output topics (changelog, revocations, audit) under its own prefix,
so repeated rounds over one input topic start from the same empty state."""

from __future__ import annotations

import gc
import sys
import threading
import time

import orjson
from prometheus_client import generate_latest

from bench.common import bench_topics, rss_bytes
from sessionwarden.config.settings import TopicNames
from sessionwarden.enforcer.loop import EnforcerLoop
from sessionwarden.policy import default_policy


class Scraper:
    """Renders the enforcer's registry once a second, as a Prometheus scrape would."""

    def __init__(self, loop: EnforcerLoop) -> None:
        self.registry = getattr(loop.metrics, "registry")  # noqa: B009 - only EnforcerMetrics has one
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            generate_latest(self.registry)
            self.scrapes += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def main() -> None:
    servers, input_topic = sys.argv[1], sys.argv[2]
    partitions, total = int(sys.argv[3]), int(sys.argv[4])
    metrics = len(sys.argv) > 5 and sys.argv[5] == "on"
    with bench_topics("drain", partitions) as fresh:
        settings = fresh.replace(
            bootstrap_servers=servers,
            log_level="WARNING",
            metrics_enabled=metrics,
            enforcer_metrics_port=0,
            topics=TopicNames(fresh.topics.prefix, input=input_topic),  # the shared input
        )
        loop = EnforcerLoop(settings, default_policy())
        scraper = Scraper(loop) if metrics else None
        gc.collect()
        rss_empty = rss_bytes()
        loop.start()
        started = cpu_started = 0.0
        while loop.stats.events < total:
            before, cpu_before = time.perf_counter(), time.process_time()
            if loop.step() and not started:
                started, cpu_started = before, cpu_before
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started  # every thread of the process, librdkafka's too
        if scraper is not None:
            scraper.stop()
        gc.collect()
        live = sum(rt.enforcer.state.live_sessions() for rt in loop.parts.values())
        rss_full = rss_bytes()
        loop.close()
    result = {
        "events": loop.stats.events,
        "seconds": elapsed,
        "rate": loop.stats.events / elapsed,
        "cpu_rate": loop.stats.events / cpu,
        "live_sessions": live,
        "rss_empty": rss_empty,
        "rss_full": rss_full,
        "bytes_per_session": (rss_full - rss_empty) / max(live, 1),
        "batches": loop.stats.batches,
        "metrics": metrics,
        "scrapes": scraper.scrapes if scraper is not None else 0,
    }
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
