"""The enforcer's peers in `make bench`: Kafka Streams and Quix Streams on the same topic.

Before anything is timed, bench/peers_check.py runs all three on a seeded topic and the run
stops unless the peers' revocations equal the enforcer's (Quix Streams: where it can fire).
Each throughput round then drains the same pre-filled topic with both peers, alternating with
the ceiling and the enforcer rounds in bench/run.py.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import run_child
from bench.kstreams_peer import KStreamsProcess
from bench.peer_process import PeerProcess
from bench.quix_peer_run import QuixProcess
from sessionwarden.config.settings import Settings

PEERS: dict[str, type[PeerProcess]] = {"kstreams": KStreamsProcess, "quix": QuixProcess}
LABELS = {"kstreams": "Kafka Streams 4.1.1", "quix": "Quix Streams 3.28.1"}


def check(servers: str) -> dict[str, Any]:
    result: dict[str, Any] = run_child(["-m", "bench.peers_check", servers], timeout=600)
    return result


def drain_round(s: Settings, total: int) -> dict[str, dict[str, Any]]:
    """One drain of the input topic by each peer (fresh group and state each time)."""
    return {
        name: peer.drain(s.kafka.bootstrap_servers, s.topics.input, s.topics.revocations, total)
        for name, peer in PEERS.items()
    }


def summarize(rounds: list[dict[str, dict[str, Any]]], enforcer_rate: float) -> dict[str, Any]:
    """Median rate of each peer over the rounds, its RSS and the enforcer's ratio to it."""
    out: dict[str, Any] = {}
    for name in PEERS:
        runs = sorted((r[name] for r in rounds), key=lambda r: r["rate"])
        mid = runs[len(runs) // 2]
        live = max(mid["live_sessions"], 1)
        out[name] = {
            "rate": statistics.median(r["rate"] for r in runs),
            "rates": [r["rate"] for r in runs],
            "rss_bytes": mid["rss_full"],
            "bytes_per_session": (mid["rss_full"] - mid["rss_empty"]) / live,
            "enforcer_ratio": enforcer_rate / statistics.median(r["rate"] for r in runs),
        }
    return out


def render(results: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Peers: the same job in Kafka Streams and Quix Streams (same topic, same run)",
        "",
    ]
    chk = results.get("peers_check")
    if chk:
        lines.append(
            f"Seeded check before timing ({chk['sessions']} sessions, bench/peers_check.py): "
            f"Kafka Streams {chk['kstreams_revocations']} revocations, identical to the "
            f"enforcer's {chk['enforcer_revocations']}: {chk['kstreams_same']}; Quix Streams "
            f"{chk['quix_revocations']}, identical to the enforcer's where it can fire: "
            f"{chk['quix_same_where_expressible']} (it cannot end the "
            f"{chk['quix_missed_silent']} sessions that go silent: no timers in its API)."
        )
    lines += [
        "",
        "| live sessions | peer | peer ev/s (rounds) | enforcer ev/s | enforcer/peer | "
        "peer RSS | peer RSS/session | enforcer RSS/session |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in results["throughput"]:
        for name, p in t.get("peers", {}).items():
            rounds = ", ".join(f"{r:,.0f}" for r in p["rates"])
            lines.append(
                f"| {t['sessions']:,} | {LABELS[name]} | {p['rate']:,.0f} ({rounds}) | "
                f"{t['enforcer_rate']:,.0f} | {p['enforcer_ratio']:.2f} | "
                f"{p['rss_bytes'] / 2**20:,.0f} MiB | {p['bytes_per_session']:,.0f} B | "
                f"{t['bytes_per_session']:,.0f} B |"
            )
    lat = results.get("latency_kstreams")
    if lat:
        lines += [
            "",
            f"Kafka Streams revocation latency at the enforcer's load (target "
            f"{lat['target_rate']:,.0f}, achieved {lat['achieved_rate']:,.0f} events/s): "
            f"p50 {lat['p50_ms']:.0f} ms, "
            f"p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms over {lat['samples']} "
            "revocations (punctuator every 50 ms). Quix Streams: not measurable, a silent "
            "session is never revoked.",
        ]
    return lines
