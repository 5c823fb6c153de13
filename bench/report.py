"""The report of `make bench`: the Markdown summary and the throughput plot of one run's
results (bench/run.py gathers them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import metrics_cost, peers, targets
from bench.gateway_latency import render_markdown as render_gateway
from bench.keycloak_events import render_markdown as render_keycloak
from bench.keycloak_latency import render_markdown as render_keycloak_revocations
from bench.mass_revoke import render_markdown as render_mass_revoke
from bench.pg_latency import render_markdown as render_postgres
from bench.ssf_latency import render_markdown as render_ssf


def _snapshot_words(rec: dict[str, Any]) -> str:
    if not rec.get("snapshot_partitions"):
        return "from the changelog's start: " + (
            ", ".join(rec.get("fallback_reasons", [])) or "no local state"
        )
    return (
        f"{rec['snapshot_partitions']} partitions from local snapshots of "
        f"{rec['snapshot_bytes'] / 1e6:.0f} MB, at most {rec['snapshot_age_s']:.0f} s old"
    )


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark {results['started']}",
        "",
        f"Machine: {results['machine']}; Kafka {results['kafka']}; "
        f"{'quick (smoke-test sizes)' if results['quick'] else 'full'} run. Throughput and "
        f"detector rounds: "
        f"{results.get('pinning', 'not pinned')}.",
        *targets.markdown(results),
        "",
        "## Enforcer throughput (same topic, same run)",
        "",
        "Raw: librdkafka consume of the same records, no decode (the limit of a Python "
        "consumer on one core); ceiling: consume + the product's decoder.",
        "",
        "| live sessions | events | raw ev/s | ceiling ev/s | enforcer ev/s | faust ev/s | "
        "enforcer/raw | enforcer/ceiling | enforcer/faust | RSS/session |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in results["throughput"]:
        raw = t.get("raw_rate")
        lines.append(
            f"| {t['sessions']:,} | {t['events']:,} | {_num(raw)} | {t['ceiling_rate']:,.0f} | "
            f"{t['enforcer_rate']:,.0f} | {t['faust_rate']:,.0f} | "
            f"{_num(t.get('ratio_to_raw'), '.2f')} | {t['ratio_to_ceiling']:.2f} | "
            f"{t['ratio_to_faust']:.1f} | {t['bytes_per_session']:,.0f} B |"
        )
    lines += scale_lines(results["throughput"])
    lat = results.get("latency")
    lat_basis = "fixed" if results.get("latency_rate_fixed") else "half the measured max"
    lines += (
        []
        if lat is None
        else [
            "",
            "## Revocation latency (visible to read_committed - deadline)",
            "",
            f"Load {lat['achieved_rate']:,.0f} events/s (target {lat['target_rate']:,.0f}, "
            f"{lat_basis}): p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, "
            f"max {lat['max_ms']:.0f} ms over {lat['samples']} revocations.",
        ]
    )
    prop = results.get("propagation")
    if prop:
        lines += [
            "",
            f"Deadline -> `is_revoked` true in a separate process: "
            f"p50 {prop.get('p50_ms', float('nan')):.0f} ms, "
            f"p99 {prop.get('p99_ms', float('nan')):.0f} ms.",
        ]
    lines += _browser_lines(results.get("browser"))
    lines += _websocket_lines(results.get("websocket_close"))
    rec = results.get("recovery")
    v = rec["verify"]["totals"] if rec else {}
    lines += (
        []
        if rec is None
        else [
            "",
            "## Recovery",
            "",
            f"SIGKILL with {rec['sessions']:,} live sessions; new enforcer enforcing after "
            f"{rec['recovery_s']:.1f} s (restore {rec['restore_s']:.1f} s, "
            f"{_snapshot_words(rec)}). Verify of the run: "
            f"{v['correct']:,} correct, {v['missed']} missed, {v['early']} early, "
            f"{v['late']:,} late, {v['spurious']} spurious.",
        ]
    )
    rf = results.get("restore_fire")
    if rf:
        lines += [
            "",
            f"While {rf['restored_records']:,} changelog records of "
            f"{len(rf['restored_partitions'])} reassigned partitions restored "
            f"({rf['restore_s']:.1f} s), deadlines on the partitions already owned fired "
            f"{rf['fire_delay_p50_ms']:.0f} ms (p50), {rf['fire_delay_p99_ms']:.0f} ms (p99), "
            f"{rf['fire_delay_max_ms']:.0f} ms (max) after they fell due "
            f"({rf['probes_inside_restore']} probes).",
        ]
    det = results.get("detect")
    if det:
        lines += [
            "",
            "## Anomaly detectors",
            "",
            f"detect app {det['rate']:,.0f} audit records/s vs bare faust agent "
            f"{det.get('faust_rate', float('nan')):,.0f}/s on the same topic; alert delay "
            f"p50 {det['p50_ms']:.0f} ms, p99 {det['p99_ms']:.0f} ms.",
            *detect_lines(det, results["throughput"]),
        ]
    if results.get("postgres"):
        lines += render_postgres(results["postgres"])
    gateway = results.get("gateway")
    if gateway and "skipped" not in gateway:
        lines += render_gateway(gateway)
    if results.get("ssf"):
        lines += render_ssf(results["ssf"])
    if results.get("mass_revoke"):
        lines += render_mass_revoke(results["mass_revoke"])
    if results.get("keycloak_events"):
        lines += render_keycloak(results["keycloak_events"])
    revocations_out = results.get("keycloak_revocations")
    if revocations_out and "skipped" not in revocations_out:
        lines += render_keycloak_revocations(revocations_out)
    lines += metrics_cost.markdown(results.get("metrics_cost"))
    return "\n".join(lines + peers.render(results)) + "\n"


def _num(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _rounds(values: list[float]) -> str:
    return " / ".join(f"{v:,.0f}" for v in values)


def scale_lines(tput: list[dict[str, Any]]) -> list[str]:
    """The rounds of every size, and the baseline checkout's drains beside this code's when
    the run had one (an A/B in the same rounds)."""
    lines = ["", "Rounds (alternating, in order): raw | ceiling | enforcer ev/s."]
    for t in tput:
        lines.append(
            f"- {t['sessions']:,}: {_rounds(t.get('raw_rates', []))} | "
            f"{_rounds(t['ceiling_rates'])} | {_rounds(t['enforcer_rates'])}"
        )
    based = [t for t in tput if "baseline" in t]
    if not based:
        return lines
    lines += [
        "",
        f"A/B against the baseline checkout `{based[0]['baseline']['checkout']}` (its enforcer "
        "drained the same topic in every round, right after this code's):",
        "",
        "| live sessions | baseline ev/s (rounds) | this code ev/s (rounds) | ratio | "
        "baseline RSS/session | this code RSS/session |",
        "|---|---|---|---|---|---|",
    ]
    for t in based:
        b = t["baseline"]
        lines.append(
            f"| {t['sessions']:,} | {b['enforcer_rate']:,.0f} ({_rounds(b['enforcer_rates'])}) | "
            f"{t['enforcer_rate']:,.0f} ({_rounds(t['enforcer_rates'])}) | "
            f"{t['enforcer_rate'] / b['enforcer_rate']:.2f}x | {b['bytes_per_session']:,.0f} B | "
            f"{t['bytes_per_session']:,.0f} B |"
        )
    return lines


def detect_lines(det: dict[str, Any], tput: list[dict[str, Any]]) -> list[str]:
    rounds = ", ".join(f"{r:.2f}" for r in det.get("ratios", []))
    lines = ["", f"detect/faust: {det.get('ratio', float('nan')):.2f} (rounds {rounds})."]
    room = targets.headroom(det, tput)
    if room is not None:
        full, need, times = room
        lines.append(
            f"At the enforcer's full rate ({full:,.0f} events/s) a mix of 1 login per 50 "
            f"activities makes {need:,.0f} audit records/s; the detectors take "
            f"{det['rate']:,.0f}/s: {times:.1f}x headroom (target 2x)."
        )
    return lines


def _browser_lines(web: dict[str, Any] | None) -> list[str]:
    if not web:
        return []
    if "skipped" in web:
        return ["", f"Deadline -> page logged out in the browser: not measured ({web['skipped']})."]
    return [
        "",
        f"Deadline -> page logged out in Chromium (example service, SSE, browser script), "
        f"{web['sessions']} sessions: p50 {web['p50_ms']:.0f} ms, p99 {web['p99_ms']:.0f} ms, "
        f"max {web['max_ms']:.0f} ms; of which is_revoked -> page: p50 {web['push_p50_ms']:.0f} "
        f"ms, p99 {web['push_p99_ms']:.0f} ms.",
    ]


def _websocket_lines(ws: dict[str, Any] | None) -> list[str]:
    if not ws:
        return []
    return [
        "",
        f"Revocation read by the service's listener -> WebSocket close frame (4401) at the "
        f"client, {ws['closed']}/{ws['sessions']} sockets: p50 {ws['p50_ms']:.1f} ms, "
        f"p99 {ws['p99_ms']:.1f} ms, max {ws['max_ms']:.1f} ms (target p99 <= 100 ms).",
    ]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    labels, values = [], []
    for t in results["throughput"]:
        for name in ("ceiling", "enforcer", "faust"):
            labels.append(f"{name}\n{t['sessions'] // 1000}k")
            values.append(t[f"{name}_rate"])
    ax.bar(labels, values, color=["#999999", "#3a6ea5", "#c06030"] * len(results["throughput"]))
    ax.set_ylabel("events/s")
    ax.set_title("throughput on the same pre-filled topic")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_scale(results: dict[str, Any], path: Path) -> bool:
    """The scale sweep: the enforcer's rate and RSS per live session against live sessions
    (log scale), the raw consume and decode ceiling beside the rate. False with fewer than two
    sizes (nothing to plot)."""
    tput = sorted(results["throughput"], key=lambda t: t["sessions"])
    if len(tput) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [t["sessions"] for t in tput]
    fig, (rate_ax, mem_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, style in (
        ("raw_rate", "raw consume", ":"),
        ("ceiling_rate", "consume + decode", "--"),
        ("enforcer_rate", "enforcer", "o-"),
    ):
        if all(key in t for t in tput):
            color = "#3a6ea5" if key == "enforcer_rate" else "black"
            rate_ax.plot(sizes, [t[key] for t in tput], style, label=label, color=color)
    if all("baseline" in t for t in tput):
        base = "#c06030"
        rates = [t["baseline"]["enforcer_rate"] for t in tput]
        rate_ax.plot(sizes, rates, "s-", label="baseline", color=base)
        per_session = [t["baseline"]["bytes_per_session"] for t in tput]
        mem_ax.plot(sizes, per_session, "s-", label="baseline", color=base)
    mem_ax.plot(
        sizes, [t["bytes_per_session"] for t in tput], "o-", label="enforcer", color="#3a6ea5"
    )
    for ax, ylabel in ((rate_ax, "events/s"), (mem_ax, "RSS bytes per live session")):
        ax.set_xscale("log")
        ax.set_xlabel("live sessions")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.legend()
    fig.suptitle("enforcer against live sessions (same topic per size, medians)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
