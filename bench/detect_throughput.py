"""Throughput and alert latency of the detect worker on the local broker.

1. Drain: pre-fill a fresh audit topic with N lifecycle records (sessions starting and ending,
   role changes, high-risk operations, rare use of ended sessions) for many users, start the
   worker, and time from its "partitions assigned" log line until the alert of a sentinel
   record placed at the end of every partition arrives: every record before it is processed.
2. Latency: with the worker caught up, publish a steady mix of benign records and records that
   each trigger one alert, and measure from the produce call of a triggering record to the
   arrival of its alert at a consumer.

3. Rounds: the drain is repeated `--rounds` times on the same topic, each time with a fresh app
   (consumer group and tables), alternating with a bare faust agent draining the same records;
   rates and their ratio are medians of the rounds, the latency is measured in the last one.

Runs the worker as `python -m sessionwarden.detect` with the shipped policy; creates its own
prefixed topics and deletes them (and faust's changelogs) afterwards.

    .venv/bin/python bench/detect_throughput.py [--events 50000] [--partitions 6]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.audit_workload import ended_used, session_records, workload  # noqa: E402
from bench.common import run_child  # noqa: E402
from sessionwarden.config.settings import Settings, load_settings  # noqa: E402
from sessionwarden.contracts.codec import encode_dict  # noqa: E402
from sessionwarden.kafka.topics import delete_topics, ensure_topics, topic_specs  # noqa: E402
from sessionwarden.ops.stats import percentiles  # noqa: E402
from sessionwarden.testing.children import Child  # noqa: E402


class AlertWatcher:
    """Reads the alert topic from its end in a thread; records each alert's arrival time."""

    def __init__(self, settings: Settings) -> None:
        self.arrivals: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        topic = settings.topics.alerts
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            }
        )
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in parts])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.02):
                if msg.error() is None and msg.value() is not None:
                    now = time.time()
                    doc = orjson.loads(msg.value())
                    with self._lock:
                        self.arrivals[doc["evidence"]["event_ids"][-1]] = (now, doc)
        self._consumer.close()

    def arrived(self, event_id: str) -> float | None:
        with self._lock:
            found = self.arrivals.get(event_id)
        return found[0] if found else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


def start_worker(settings: Settings, group: str) -> Child:
    env = {
        "SESSIONWARDEN_DETECT_GROUP_ID": group,  # a fresh app (group, tables) per round
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SESSIONWARDEN_TOPIC_PREFIX": settings.topics.prefix,
        "SESSIONWARDEN_PARTITIONS": str(settings.kafka.partitions),
        "SESSIONWARDEN_LOG_FORMAT": "json",
        "SESSIONWARDEN_POLICY_FILE": None,  # the shipped policy
    }
    args = [sys.executable, "-m", "sessionwarden.detect"]
    return Child(args, env, name="detect worker", cwd=REPO)


def assigned_at(lines: list[str]) -> float | None:
    for line in list(lines):
        with contextlib.suppress(orjson.JSONDecodeError):
            doc = orjson.loads(line)
            if doc.get("msg") == "partitions assigned and recovered" and doc.get("partitions"):
                return datetime.fromisoformat(doc["ts"]).timestamp()
    return None


def fill(settings: Settings, producer: Producer, args: argparse.Namespace) -> tuple[int, list[str]]:
    """The workload, then a sentinel at the end of every partition (its alert ends a drain)."""
    count = 0
    for doc in workload(args.events, args.users):
        producer.produce(settings.topics.audit, encode_dict(doc), doc["user_id"].encode())
        producer.poll(0)
        count += 1
    sentinels = []
    for p in range(settings.kafka.partitions):
        doc = ended_used(f"sentinel-{p}", time.time())
        sentinels.append(doc["event_id"])
        producer.produce(
            settings.topics.audit, encode_dict(doc), doc["user_id"].encode(), partition=p
        )
    producer.flush(60)
    return count + len(sentinels), sentinels


def drain(
    settings: Settings,
    producer: Producer,
    args: argparse.Namespace,
    sentinels: list[str],
    latency: bool,
) -> dict[str, float]:
    """One worker (a fresh app) from the start of the topic to every sentinel's alert."""
    watcher = AlertWatcher(settings)
    worker = start_worker(settings, f"bench-detect-{uuid.uuid4().hex[:6]}")
    lines = worker.lines
    try:
        try:
            wait_for(lambda: assigned_at(lines) is not None, 60, "the worker's assignment")
            wait_for(
                lambda: all(watcher.arrived(e) for e in sentinels), args.drain_timeout, "the drain"
            )
        except SystemExit:
            sys.stderr.write(worker.tail(60) + "\n")
            raise
        started = assigned_at(lines) or 0.0
        finished = max(watcher.arrived(e) or 0.0 for e in sentinels)
        alerts = len(watcher.arrivals) - len(sentinels)
        seconds = finished - started
        measured = measure_latency(settings, producer, watcher, args) if latency else {}
    finally:
        watcher.close()
        worker.stop(60)
    return {"seconds": seconds, "alerts": alerts, **measured}


def faust_peer(settings: Settings, records: int) -> float:
    """The peer: a bare faust agent over the same audit records."""
    args = ["-m", "bench.faust_peer", settings.kafka.bootstrap_servers, settings.topics.audit]
    rate: float = run_child([*args, str(records)], timeout=900)["rate"]
    return rate


def rounds(settings: Settings, producer: Producer, args: argparse.Namespace) -> dict[str, Any]:
    """Alternating rounds on one topic: detect worker, then bare faust agent; the alert
    latency is measured in the last round (its load lands after every drained record)."""
    records, sentinels = fill(settings, producer, args)
    detect_rates, faust_rates, last = [], [], {}
    for r in range(args.rounds):
        last = drain(settings, producer, args, sentinels, latency=r == args.rounds - 1)
        detect_rates.append(records / last["seconds"])
        faust_rates.append(faust_peer(settings, records))
        print(f"round {r + 1}: detect {detect_rates[-1]:,.0f}/s, faust {faust_rates[-1]:,.0f}/s")
    ratios = [d / f for d, f in zip(detect_rates, faust_rates, strict=True)]
    return {
        **last,
        "records": records,
        "seconds": records / statistics.median(detect_rates),
        "detect_rates": detect_rates,
        "faust_rates": faust_rates,
        "faust_rate": statistics.median(faust_rates),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


def measure_latency(
    settings: Settings, producer: Producer, watcher: AlertWatcher, args: argparse.Namespace
) -> dict[str, float]:
    """Paced load: args.rate records/s for args.seconds, one in ten triggering an alert."""
    rng = random.Random(11)
    sent: dict[str, float] = {}
    interval = 1.0 / args.rate
    next_at = time.monotonic()
    end = next_at + args.seconds
    i = 0
    while next_at < end:
        now = time.time()
        if i % 10 == 0:
            doc = ended_used(f"lat-{i}", now, sid=f"gone-{i}")
            sent[doc["event_id"]] = now
        else:
            doc = session_records(rng, f"bg-{rng.randrange(args.users)}", f"b{i}", now)[0]
        producer.produce(settings.topics.audit, encode_dict(doc), doc["user_id"].encode())
        producer.poll(0)
        i += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    producer.flush(30)
    wait_for(lambda: all(watcher.arrived(e) for e in sent), 120, "the latency alerts")
    delays = sorted((watcher.arrived(e) or 0.0) - t for e, t in sent.items())
    return {
        "latency_samples": len(delays),
        "p50_ms": 1000 * statistics.median(delays),
        "p99_ms": 1000 * percentiles(delays, 99)[0],
        "max_ms": 1000 * delays[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=float, default=500.0, help="records/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating detect/faust rounds")
    parser.add_argument("--json", action="store_true", help="end with one JSON result line")
    parser.add_argument(
        "--drain-timeout", type=float, default=900.0, help="seconds a worker may take to drain"
    )
    args = parser.parse_args()
    settings = load_settings(
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=args.partitions
    )
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    ensure_topics(admin, topic_specs(settings, 86400), report=lambda _: None)
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "queue.buffering.max.messages": 200_000,
            "log_level": 3,
        }
    )
    try:
        result = rounds(settings, producer, args)
    finally:
        delete_topics(admin, prefix=settings.topics.prefix)
    rate = result["records"] / result["seconds"]
    print(
        f"drain:   {result['records']:.0f} audit records in {result['seconds']:.2f} s"
        f" = {rate:,.0f} records/s ({args.partitions} partitions, {result['alerts']:.0f} alerts)"
    )
    print(
        f"latency: {result['latency_samples']:.0f} alerts at {args.rate:g} records/s:"
        f" p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms,"
        f" max {result['max_ms']:.1f} ms (produce call to alert arrival)"
    )
    print(
        f"peer:    bare faust agent {result['faust_rate']:,.0f} records/s on the same topic;"
        f" detect/faust {result['ratio']:.2f} (median of {args.rounds} alternating rounds)"
    )
    if args.json:
        print(orjson.dumps({**result, "rate": rate}).decode(), flush=True)


if __name__ == "__main__":
    main()
