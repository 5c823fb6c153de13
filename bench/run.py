"""`make bench`: every benchmark on the real broker, side by side with its baseline.

Writes bench/results/<timestamp>.json and <timestamp>.md (+ PNG plots) and prints the summary.
    python -m bench.run [--quick] [--sizes 100000,1000000] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import common, metrics_cost, peers
from bench.common import REPO, bench_topics, bootstrap, broker_port, fill_mixed, run_child
from bench.pinning import pinned
from bench.report import plot, plot_scale, render_markdown

FAUST_EVENTS = 50_000
QUICK_CHILD_TIMEOUT_S = 240.0
"""With --quick no benchmark child may run longer (each takes well under a minute)."""
SECTIONS = (
    "throughput",
    "latency",
    "browser",
    "websocket",
    "recovery",
    "restore_fire",
    "detect",
    "postgres",
    "gateway",
    "ssf",
    "metrics_cost",
    "mass_revoke",
    "keycloak",
    "keycloak_revocations",
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def throughput(
    sessions: int,
    activities: int,
    faust_events: int,
    repeats: int,
    with_peers: bool = False,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Raw consume, ceiling and enforcer alternately on the same pre-filled topic (medians of
    `repeats` rounds, after one untimed warm-up read: the first read of fresh data is
    measurably slower), then the faust peer. With ``baseline`` (another checkout of the
    project) its enforcer drains the same topic in every round too, right after this one's."""
    with bench_topics("tput") as s:
        log(f"filling {sessions:,} logins + {activities:,} activities")
        fill = fill_mixed(s, sessions, activities)
        total = fill["events"]
        ceiling_args = [
            "-m",
            "bench.ceiling",
            s.kafka.bootstrap_servers,
            s.topics.input,
            str(total),
        ]
        run_child(ceiling_args)  # warm-up
        drain_args = [
            "-m",
            "bench.enforcer_drain",
            s.kafka.bootstrap_servers,
            s.topics.input,
            str(s.kafka.partitions),
            str(total),
        ]
        raws, ceilings, enforcers, baselines, peer_rounds = [], [], [], [], []
        for r in range(repeats):
            log(f"round {r + 1}/{repeats}: bare confluent-kafka consume, no decode (raw)")
            raws.append(run_child([*ceiling_args, "raw"])["rate"])
            log(f"round {r + 1}/{repeats}: bare confluent-kafka consume+decode (ceiling)")
            ceilings.append(run_child(ceiling_args)["rate"])
            log(f"round {r + 1}/{repeats}: enforcer drain")
            enforcers.append(run_child(drain_args))
            if baseline is not None:
                log(f"round {r + 1}/{repeats}: enforcer drain of the baseline {baseline}")
                baselines.append(run_child(drain_args, cwd=baseline))
            done = [raws[-1], ceilings[-1], enforcers[-1]["rate"]]
            done += [baselines[-1]["rate"]] if baselines else []
            log(f"round {r + 1}/{repeats} ev/s (raw, ceiling, enforcer[, baseline]): {done}")
            if with_peers:
                log(f"round {r + 1}/{repeats}: Kafka Streams and Quix Streams drains")
                peer_rounds.append(peers.drain_round(s, total))
        enforcer = sorted(enforcers, key=lambda e: e["rate"])[len(enforcers) // 2]
        ceiling = {"rate": statistics.median(ceilings)}
        log(f"bare faust agent (first {faust_events:,} events)")
        peer = run_child(
            [
                "-m",
                "bench.faust_peer",
                s.kafka.bootstrap_servers,
                s.topics.input,
                str(min(faust_events, total)),
            ]
        )
    extra: dict[str, Any] = (
        {"peers": peers.summarize(peer_rounds, enforcer["rate"])} if peer_rounds else {}
    )
    if baselines:
        base = sorted(baselines, key=lambda e: e["rate"])[len(baselines) // 2]
        extra["baseline"] = {
            "checkout": str(baseline),
            "enforcer_rate": base["rate"],
            "enforcer_rates": [e["rate"] for e in baselines],
            "cpu_rates": [e["cpu_rate"] for e in baselines],
            "bytes_per_session": base["bytes_per_session"],
            "bytes_per_session_rounds": [e["bytes_per_session"] for e in baselines],
        }
    raw = statistics.median(raws)
    return {
        **extra,
        "sessions": sessions,
        "events": total,
        "mean_event_bytes": fill["mean_bytes"],
        "raw_rate": raw,
        "ceiling_rate": ceiling["rate"],
        "enforcer_rate": enforcer["rate"],
        "faust_rate": peer["rate"],
        "ratio_to_raw": enforcer["rate"] / raw,
        "ratio_to_ceiling": enforcer["rate"] / ceiling["rate"],
        "ratio_to_faust": enforcer["rate"] / peer["rate"],
        "raw_rates": raws,
        "ceiling_rates": ceilings,
        "enforcer_rates": [e["rate"] for e in enforcers],
        "cpu_rates": [e["cpu_rate"] for e in enforcers],
        "bytes_per_session_rounds": [e["bytes_per_session"] for e in enforcers],
        "rss_bytes": enforcer["rss_full"],
        "bytes_per_session": enforcer["bytes_per_session"],
        "live_sessions": enforcer["live_sessions"],
    }


def activities_for(sessions: int) -> int:
    """Activity events after the logins of a throughput run: three per session up to 100k
    live sessions, one per session up to 1M, and a million beyond (10M: fewer per session, so
    that the topic and the run fit the machine)."""
    if sessions <= 100_000:
        return sessions * 3
    return sessions if sessions <= 1_000_000 else 1_000_000


def latency(rate: float, seconds: float, peer: str = "enforcer") -> dict[str, Any]:
    with bench_topics("lat") as s:
        log(f"revocation latency of the {peer} at {rate:,.0f} events/s for {seconds:g}s")
        args = [s.kafka.bootstrap_servers, s.topics.prefix, str(rate), str(seconds), peer]
        return run_child(["-m", "bench.latency", *args])


def recovery(sessions: int, idle_s: float, mode: str = "snapshot") -> dict[str, Any]:
    with bench_topics("rec") as s:
        log(f"recovery with {sessions:,} live sessions (idle timeout {idle_s:g}s, {mode})")
        return run_child(
            [
                "-m",
                "bench.recovery",
                s.kafka.bootstrap_servers,
                s.topics.prefix,
                str(sessions),
                str(idle_s),
                mode,
            ],
            timeout=1500,
        )


def restore_fire(sessions: int) -> dict[str, Any]:
    with bench_topics("rfire") as s:
        log(f"deadlines of owned partitions while half of {sessions:,} sessions restore")
        return run_child(
            ["-m", "bench.restore_fire", s.kafka.bootstrap_servers, s.topics.prefix, str(sessions)],
            timeout=1500,
        )


def propagation(sessions: int) -> dict[str, Any]:
    log(f"propagation to is_revoked in a separate process ({sessions} sessions)")
    return run_child(["-m", "bench.propagation_latency", "--sessions", str(sessions)])


def browser(sessions: int) -> dict[str, Any]:
    from sessionwarden.testing.browser import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        log(f"browser latency skipped: {reason}")
        return {"skipped": reason}
    log(f"deadline -> page logged out in Chromium ({sessions} sessions)")
    return run_child(["-m", "bench.browser_latency", "--sessions", str(sessions)])


def websocket_close(sessions: int) -> dict[str, Any]:
    log(f"revocation read -> WebSocket close frame at the client ({sessions} sockets)")
    return run_child(["-m", "bench.websocket_close", "--sessions", str(sessions)])


def detect(events: int, rounds: int, drain_timeout: float) -> dict[str, Any]:
    log(f"detect app on {events:,} audit records, beside a bare faust agent ({rounds} rounds)")
    args = ["--events", str(events), "--rounds", str(rounds), "--json"]
    args += ["--drain-timeout", str(drain_timeout)]
    return run_child(["bench/detect_throughput.py", *args], timeout=2400)


def postgres(rate: float, seconds: float, mass: int) -> dict[str, Any]:
    with bench_topics("pg") as s:
        log(f"deadline -> PostgreSQL refuses, at {rate:,.0f} events/s; mass expiry of {mass:,}")
        args = [s.kafka.bootstrap_servers, s.topics.prefix, str(rate), str(seconds), str(mass)]
        return run_child(["-m", "bench.pg_latency", *args], timeout=1500)


def gateway(rate: float, seconds: float, check_rate: float, check_seconds: float) -> dict[str, Any]:
    from sessionwarden.testing.nginx import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        log(f"gateway latency skipped: {reason}")
        return {"skipped": reason}
    with bench_topics("gw") as s:
        log(f"deadline -> refused at nginx, at {rate:,.0f} events/s; the gate at {check_rate:g}/s")
        args = [s.kafka.bootstrap_servers, s.topics.prefix, str(rate), str(seconds)]
        args += [str(check_rate), str(check_seconds)]
        return run_child(["-m", "bench.gateway_latency", *args], timeout=900)


def ssf(rate: float, seconds: float) -> dict[str, Any]:
    with bench_topics("ssf") as s:
        log(f"deadline -> SET accepted by an SSF push receiver, at {rate:,.0f} events/s")
        args = [s.kafka.bootstrap_servers, s.topics.prefix, str(rate), str(seconds)]
        return run_child(["-m", "bench.ssf_latency", *args], timeout=900)


def keycloak_revocations(sessions: int, per_s: float) -> dict[str, Any]:
    """Deadline -> the Keycloak session ended, on a Keycloak from `make keycloak`'s copy."""
    from sessionwarden.testing.keycloak import KeycloakError, built_copy

    try:
        built_copy(say=log)
    except KeycloakError as err:
        log(f"Keycloak latency skipped: {err}")
        return {"skipped": str(err)}
    with bench_topics("kc", policy_file=REPO / "bench/policies/latency.toml") as s:
        log(f"deadline -> Keycloak session ended, {sessions} sessions at {per_s:g}/s")
        args = [s.kafka.bootstrap_servers, s.topics.prefix, str(sessions), str(per_s)]
        return run_child(["-m", "bench.keycloak_latency", *args], timeout=600)


def mass_revoke(sessions: int) -> dict[str, Any]:
    log(f"operator revocation of a tenant's {sessions:,} live sessions")
    return run_child(["-m", "bench.mass_revoke", str(sessions)], timeout=1500)


def keycloak(rounds: int) -> dict[str, Any]:
    from sessionwarden.testing.keycloak import KeycloakError, built_copy

    try:
        built_copy(log)
    except KeycloakError as err:
        log(f"Keycloak events skipped: {err}")
        return {"skipped": str(err)}
    log(f"Keycloak events -> auth.events ({rounds} logins and refreshes)")
    return run_child(["-m", "bench.keycloak_events", str(rounds)], timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a CI smoke test")
    parser.add_argument("--sizes", help="live sessions per throughput run, comma separated")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--no-peers", action="store_true", help="skip Kafka/Quix Streams")
    parser.add_argument("--latency-rate", type=float, help="events/s (default: half the max)")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="leave the broker and the systems measured on every core (throughput, detect)",
    )
    parser.add_argument("--only", help=f"comma separated sections: {','.join(SECTIONS)}")
    parser.add_argument(
        "--baseline",
        help="another checkout of the project: its enforcer drains the same topics in every "
        "throughput round (an A/B in one run)",
    )
    args = parser.parse_args()
    sizes = (
        [int(x) for x in args.sizes.split(",")]
        if args.sizes
        else [5_000]
        if args.quick
        else [100_000, 1_000_000]
    )
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {__import__('os').cpu_count()} cores",
        "kafka": "4.1.1 (infra/kafka/pom.xml)",
        "throughput": [],
    }
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if args.quick:  # a smoke test: a child that hangs fails it soon, saying where
        common.CHILD_TIMEOUT_CAP_S = QUICK_CHILD_TIMEOUT_S
    t0 = time.monotonic()
    if not args.no_peers and "throughput" in only:
        log("seeded check: the peers' revocations against the enforcer's")
        results["peers_check"] = peers.check(bootstrap())
    pin = contextlib.nullcontext("not pinned (--no-pin)") if args.no_pin else pinned(broker_port())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    with pin as results["pinning"]:
        for n in sizes if "throughput" in only else []:
            if results["throughput"]:  # what is measured so far outlives a run cut short
                (out / f"{stamp}.partial.json").write_bytes(orjson.dumps(results))
            results["throughput"].append(
                throughput(
                    n,
                    activities_for(n),
                    5_000 if args.quick else FAUST_EVENTS,
                    1 if args.quick else 3,
                    with_peers=not args.no_peers,
                    baseline=Path(args.baseline).resolve() if args.baseline else None,
                )
            )
        if "detect" in only:
            results["detect"] = (
                detect(3_000, 1, QUICK_CHILD_TIMEOUT_S / 2)
                if args.quick
                else detect(50_000, 3, 900)
            )
    if "latency" in only:
        max_rate = max((t["enforcer_rate"] for t in results["throughput"]), default=40_000.0)
        rate = args.latency_rate or max_rate / 2
        results["latency_rate_fixed"] = bool(args.latency_rate)
        results["latency"] = latency(rate, 5 if args.quick else 20)
        if not args.no_peers:
            results["latency_kstreams"] = latency(rate, 5 if args.quick else 20, "kstreams")
        results["propagation"] = propagation(30 if args.quick else 200)
    if "browser" in only:
        results["browser"] = browser(10 if args.quick else 60)
    if "websocket" in only:
        results["websocket_close"] = websocket_close(30 if args.quick else 300)
    if "recovery" in only:
        results["recovery"] = (
            recovery(5_000, 20) if args.quick else recovery(max(sizes), 60 + max(sizes) / 10_000)
        )
    if "restore_fire" in only:
        results["restore_fire"] = restore_fire(5_000 if args.quick else max(sizes))
    if "postgres" in only:
        rate = results["latency"]["target_rate"] if "latency" in results else 10_000.0
        results["postgres"] = postgres(
            rate, 5 if args.quick else 20, 5_000 if args.quick else 100_000
        )
    if "gateway" in only:
        rate = results["latency"]["target_rate"] if "latency" in results else 10_000.0
        results["gateway"] = gateway(rate, 5, 500, 3) if args.quick else gateway(rate, 20, 1000, 20)
    if "ssf" in only:
        rate = results["latency"]["target_rate"] if "latency" in results else 10_000.0
        rate = args.latency_rate or rate
        results["ssf"] = ssf(rate, 5 if args.quick else 20)
    if "metrics_cost" in only:
        results["metrics_cost"] = metrics_cost.both(args.quick, log)
    if "keycloak_revocations" in only:
        results["keycloak_revocations"] = keycloak_revocations(
            20 if args.quick else 200, 5.0 if args.quick else 10.0
        )
    if "mass_revoke" in only:
        results["mass_revoke"] = mass_revoke(5_000 if args.quick else 100_000)
    if "keycloak" in only:
        results["keycloak_events"] = keycloak(10 if args.quick else 100)
    results["elapsed_s"] = time.monotonic() - t0
    (out / f"{stamp}.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    plot(results, out / f"{stamp}-throughput.png")
    md = render_markdown(results) + f"\n![throughput]({stamp}-throughput.png)\n"
    if plot_scale(results, out / f"{stamp}-scale.png"):
        md += f"\n![rate and memory against live sessions]({stamp}-scale.png)\n"
    (out / f"{stamp}.md").write_text(md)
    print(md)
    log(f"done in {results['elapsed_s']:.0f}s: {out / stamp}.json, .md, -throughput.png")


if __name__ == "__main__":
    main()
