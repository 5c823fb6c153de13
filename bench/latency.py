"""Revocation latency under steady load: (revocation visible to a read_committed consumer)
minus deadline, while background activity runs at a fixed rate.
Usage: python -m bench.latency SERVERS PREFIX RATE SECONDS [enforcer|kstreams]"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from bench.common import Prober, child_settings, produce, producer
from bench.kstreams_peer import KStreamsProcess
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.kafka.offsets import GroupOffsets, group_lag
from sessionwarden.ops.stats import percentiles
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.events import activity_doc, iso, login_doc
from sessionwarden.testing.services import EnforcerProcess
from sessionwarden.testing.waiting import wait_until

POLICY = "bench/policies/latency.toml"
BACKGROUND_SESSIONS = 20_000
SHORT_PER_S = 20  # short-lived sessions per second, each revoked 2 s after login
IDLE = 2.0


def main() -> None:
    servers, prefix, rate, seconds = (
        sys.argv[1],
        sys.argv[2],
        float(sys.argv[3]),
        float(sys.argv[4]),
    )
    settings = child_settings(servers, prefix)
    if len(sys.argv) > 5 and sys.argv[5] == "kstreams":
        topics = settings.topics
        with KStreamsProcess(servers, topics.input, topics.revocations, Path(POLICY)) as peer:
            peer.wait_assigned()
            result = _measure(settings.replace(group_id=peer.group_id), rate, seconds)
        print(orjson.dumps(result).decode(), flush=True)
        return
    with EnforcerProcess(settings, policy=Path(POLICY), SESSIONWARDEN_LOG_LEVEL="INFO") as proc:
        proc.wait_assigned()
        result = _measure(settings, rate, seconds)
    print(orjson.dumps(result).decode(), flush=True)


def _measure(settings: Settings, rate: float, seconds: float) -> dict[str, float]:
    collector = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    deadlines, achieved = run_load(settings, rate, seconds)
    wait_until(lambda: len(collector.docs()) >= len(deadlines), 60, "all short revocations")
    lat = sorted(
        t - deadlines[d["session_id"]] for t, d in collector.timed() if d["session_id"] in deadlines
    )
    collector.close()
    return {"target_rate": rate, "achieved_rate": achieved, **summary(lat)}


def kafka_reads(collector: Collector, deadlines: dict[str, float]) -> dict[str, float]:
    """When a separate consumer read each short session's revocation (waits for them all)."""
    wait_until(lambda: len(collector.docs()) >= len(deadlines), 60, "every revocation on Kafka")
    return {d["session_id"]: t for t, d in collector.timed() if d["session_id"] in deadlines}


def layer_latency(
    rate: float,
    achieved: float,
    deadlines: dict[str, float],
    latency: dict[str, float],
    seen: dict[str, float],
) -> dict[str, Any]:
    """A layer's figures: its ``latency`` after each deadline, the revocation's read from Kafka
    (``seen``) after the deadline, and the layer's arrival after that read."""
    return {
        "target_rate": rate,
        "achieved_rate": achieved,
        **summary(list(latency.values())),
        "kafka": summary([t - deadlines[sid] for sid, t in seen.items()]),
        "beyond_kafka": summary([latency[sid] + deadlines[sid] - t for sid, t in seen.items()]),
    }


def probed_latency(
    settings: Settings, prober: Prober, rate: float, seconds: float
) -> dict[str, Any]:
    """The load at ``rate`` for ``seconds``, each short session probed until refused: the
    layer's figures (``layer_latency``)."""
    collector = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    prober.start()
    deadlines, achieved = run_load(settings, rate, seconds, prober.add)
    wait_until(lambda: len(prober.latency) >= len(deadlines), 60, "every short session refused")
    prober.stop()
    seen = kafka_reads(collector, deadlines)
    collector.close()
    return layer_latency(rate, achieved, deadlines, prober.latency, seen)


def summary(lat: list[float]) -> dict[str, float]:
    """Sample count and percentiles (ms) of latencies in seconds."""
    lat = sorted(lat)
    return {
        "samples": len(lat),
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": percentiles(lat, 99)[0] * 1000,
        "max_ms": lat[-1] * 1000,
        "min_ms": lat[0] * 1000,
    }


def run_load(
    settings: Settings,
    rate: float,
    seconds: float,
    on_short: Callable[[str, float], None] = lambda sid, deadline: None,
) -> tuple[dict[str, float], float]:
    """The load: background logins, then `seconds` of activity at `rate` events/s with
    SHORT_PER_S short sessions a second (`on_short(session_id, deadline)` for each). Returns
    the short sessions' deadlines and the achieved rate."""
    servers = settings.kafka.bootstrap_servers
    p = producer(settings)
    rng = random.Random(5)
    topic = settings.topics.input
    t0 = time.time()
    for i in range(BACKGROUND_SESSIONS):
        doc = login_doc(f"bg{i}", f"bg{i}", t0, risk="low")
        produce(p, topic, encode_dict(doc), doc["user_id"].encode())
    p.flush(60)
    # measure the steady state, not the enforcer taking in the background logins
    admin = AdminClient({"bootstrap.servers": servers})
    offsets = GroupOffsets({"bootstrap.servers": servers}, settings.enforcer.group_id)
    tps = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
    try:
        wait_until(lambda: group_lag(admin, offsets, tps) == 0, 120, "the background logins")
    finally:
        offsets.close()
    deadlines: dict[str, float] = {}
    stop = time.monotonic() + seconds
    sent = 0
    next_short = time.monotonic()
    started = time.monotonic()
    while time.monotonic() < stop:
        now = time.time()
        if time.monotonic() >= next_short:
            sid = f"short-{len(deadlines)}"
            doc = login_doc(sid, f"su{len(deadlines)}", now, risk="short")
            produce(p, topic, encode_dict(doc), doc["user_id"].encode())
            deadlines[sid] = datetime_round(now) + IDLE
            on_short(sid, deadlines[sid])
            next_short += 1 / SHORT_PER_S
        batch = 200
        for _ in range(batch):
            i = rng.randrange(BACKGROUND_SESSIONS)
            doc = activity_doc(f"bg{i}", f"bg{i}", now)
            produce(p, topic, encode_dict(doc), doc["user_id"].encode())
        sent += batch
        p.poll(0)
        target = started + sent / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    achieved = sent / (time.monotonic() - started)
    p.flush(60)
    return deadlines, achieved


def datetime_round(t: float) -> float:
    """The deadline as the enforcer computes it: from the microsecond wire timestamp."""
    return datetime.fromisoformat(iso(t)).timestamp()


if __name__ == "__main__":
    main()
