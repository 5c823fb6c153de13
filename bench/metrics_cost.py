"""The cost of metrics on the enforcer's hot path, measured two ways in one run, metrics off
and on alternately, medians of the rounds:

- ``drain``: a real enforcer draining the same pre-filled topic (Kafka included, so the
  machine's noise is included too; a Prometheus scrape every second while on);
- ``core``: the same decoded events applied in-process through the observer the loop uses,
  plus its per-batch flush (only the hot path: the number the 3% target is about).

    python -m bench.metrics_cost [--sessions N] [--activities N] [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from typing import Any

import orjson

from bench.common import bench_topics, fill_mixed, run_child


def measure(sessions: int, activities: int, rounds: int, report: Any = print) -> dict[str, Any]:
    with bench_topics("mcost") as s:
        report(f"metrics cost: filling {sessions:,} logins + {activities:,} activities")
        total = fill_mixed(s, sessions, activities)["events"]
        args = ["-m", "bench.enforcer_drain", s.kafka.bootstrap_servers, s.topics.input]
        args += [str(s.kafka.partitions), str(total)]
        run_child([*args, "off"])  # warm-up: the first read of fresh data is slower
        rates: dict[str, list[float]] = {"off": [], "on": []}
        cpu_rates: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(rounds):
            # Alternate which goes first, so a drift in the machine's load hits both alike.
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                report(f"metrics cost round {r + 1}/{rounds}: metrics {mode}")
                result = run_child([*args, mode])
                rates[mode].append(result["rate"])
                cpu_rates[mode].append(result["cpu_rate"])
    return {**_summary(rates, total, rounds), "cpu": _summary(cpu_rates, total, rounds)}


def hot_path(sessions: int, activities: int, rounds: int, batch: int = 5000) -> dict[str, Any]:
    """Events/s of PartitionEnforcer.apply, its outcome recorded by the silent observer vs. the
    metrics one (what the batch does with each event)."""
    from prometheus_client import CollectorRegistry

    from sessionwarden.config.settings import TopicNames, load_settings
    from sessionwarden.contracts.codec import decode_auth_event, encode_dict
    from sessionwarden.enforcer.engine.core import PartitionEnforcer
    from sessionwarden.enforcer.metrics import EnforcerMetrics
    from sessionwarden.ops.observer import EnforcerObserver
    from sessionwarden.policy import default_policy
    from sessionwarden.testing.events import activity_doc, login_doc

    rng = random.Random(7)
    now = time.time()
    docs = [login_doc(f"s{i}", f"u{i}", now - 60) for i in range(sessions)]
    docs += [
        activity_doc(f"s{(j := rng.randrange(sessions))}", f"u{j}", now - 30)
        for _ in range(activities)
    ]
    events = [decode_auth_event(encode_dict(d)) for d in docs]
    settings = load_settings(metrics_enabled=True)
    policy = default_policy()

    def run(observer: EnforcerObserver) -> float:
        core = PartitionEnforcer(policy, 0)
        gc.collect()
        started = time.process_time()  # CPU time: another process's load does not count
        for i in range(0, len(events), batch):
            core.state.begin()
            for event in events[i : i + batch]:
                observer.applied(event.type, core.apply(event, now, now))
            core.state.commit()
            core.state.take_outputs()
            observer.batch_done(batch, started, {}, _NoPartitions())
        return len(events) / (time.process_time() - started)

    rates: dict[str, list[float]] = {"off": [], "on": []}
    run(EnforcerObserver())  # warm-up
    for r in range(rounds):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            observer = (
                EnforcerMetrics(settings, TopicNames(), CollectorRegistry())
                if mode == "on"
                else EnforcerObserver()
            )
            rates[mode].append(run(observer))
    return _summary(rates, len(events), rounds)


class _NoPartitions:
    def get_watermark_offsets(self, partition: Any, timeout: float = 0, cached: bool = True) -> Any:
        raise AssertionError("no partitions")


def _summary(rates: dict[str, list[float]], events: int, rounds: int) -> dict[str, Any]:
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    return {
        "events": events,
        "rounds": rounds,
        "rate_off": off,
        "rate_on": on,
        "cost_pct": 100.0 * (off - on) / off,
        # Best rounds too: on a shared machine the fastest round is the least disturbed one.
        "cost_best_pct": 100.0 * (max(rates["off"]) - max(rates["on"])) / max(rates["off"]),
        "rates_off": rates["off"],
        "rates_on": rates["on"],
    }


def both(quick: bool, report: Any = print) -> dict[str, Any]:
    """What `make bench` runs: both measures at its sizes."""
    sessions, activities, rounds = (5_000, 15_000, 1) if quick else (50_000, 150_000, 5)
    report(f"metrics cost: in-process hot path, {rounds} rounds each")
    return {
        "core": hot_path(sessions, activities, 3 * rounds),
        "drain": measure(sessions, activities, rounds, report),
    }


def markdown(result: dict[str, Any] | None) -> list[str]:
    if not result:
        return []
    lines = ["", "## Cost of metrics (same run, alternating rounds, medians)", ""]
    for r, text in (
        (result["drain"], "enforcer drain, wall clock"),
        (result["drain"]["cpu"], "enforcer drain, per CPU second of the process"),
        (result["core"], "in-process hot path, per CPU second"),
    ):
        lines.append(
            f"- {text}: {r['rate_off']:,.0f} ev/s off, {r['rate_on']:,.0f} ev/s on: "
            f"{r['cost_pct']:+.1f}% (best rounds {r['cost_best_pct']:+.1f}%), "
            f"{r['rounds']} rounds of {r['events']:,} events."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--activities", type=int, default=150_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = {
        "core": hot_path(args.sessions, args.activities, 3 * args.rounds),
        "drain": measure(args.sessions, args.activities, args.rounds),
    }
    print("\n".join(markdown(result)))
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
