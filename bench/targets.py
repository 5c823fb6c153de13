"""The performance targets of `make bench`, each judged on this run's own figures: one table at
the top of the report that says, row by row, what was measured and whether it met its target.
A figure the run did not measure (a section left out, a size not run) is reported as such,
never as met."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MEGA = 1_000_000
HUNDRED_K = 100_000
AUDIT_PER_INPUT = 2 / 51
"""Audit records per input record in a mix of 1 login per 50 activities: each login yields a
session_started, and each session in time a session_ended; plain activity yields none."""


@dataclass(frozen=True)
class Row:
    figure: str
    target: str
    measured: str  # "not measured" when the run has no figure for it
    met: bool | None  # None: not measured


def _size(results: dict[str, Any], sessions: int) -> dict[str, Any] | None:
    return next((t for t in results.get("throughput", []) if t["sessions"] == sessions), None)


def _ratio_row(results: dict[str, Any], figure: str, sessions: int, key: str, least: float) -> Row:
    t = _size(results, sessions)
    if t is None:
        return Row(figure, f">= {least:g}", "not measured", None)
    value = float(t[key])
    return Row(figure, f">= {least:g}", f"{value:.2f}", value >= least)


def _peer_row(results: dict[str, Any], peer: str, label: str, least: float) -> Row:
    found = [
        (t["sessions"], float(t["peers"][peer]["enforcer_ratio"]))
        for t in results.get("throughput", [])
        if peer in t.get("peers", {})
    ]
    figure = f"enforcer vs {label}, same job"
    if not found:
        return Row(figure, f">= {least:g}x", "not measured", None)
    text = ", ".join(f"{r:.2f}x at {n // 1000:,}k" for n, r in found)
    return Row(figure, f">= {least:g}x at every size", text, all(r >= least for _, r in found))


def _growth_row(results: dict[str, Any]) -> Row:
    """How the rate holds as state grows: the rate at 1M live sessions over the rate at 100k."""
    figure, target = "enforcer rate at 1M / at 100k", ">= 0.8"
    big, small = _size(results, MEGA), _size(results, HUNDRED_K)
    if big is None or small is None:
        return Row(figure, target, "not measured", None)
    value = float(big["enforcer_rate"]) / float(small["enforcer_rate"])
    return Row(figure, target, f"{value:.2f}", value >= 0.8)


def _rss_row(results: dict[str, Any]) -> Row:
    figure, target = "RSS per live session, 1M", "<= 512 B and below Kafka Streams"
    t = _size(results, MEGA)
    if t is None:
        return Row(figure, target, "not measured", None)
    ours = float(t["bytes_per_session"])
    ks = t.get("peers", {}).get("kstreams", {}).get("bytes_per_session")
    peer = "Kafka Streams not measured" if ks is None else f"Kafka Streams {ks:,.0f} B"
    met = ours <= 512 and ks is not None and ours < float(ks)
    return Row(figure, target, f"{ours:,.0f} B ({peer})", met)


def _restore_row(results: dict[str, Any]) -> Row:
    figure, rec = "restore after SIGKILL, 1M sessions", results.get("recovery")
    if rec is None or rec.get("sessions") != MEGA:
        return Row(figure, "<= 5 s", "not measured", None)
    return Row(figure, "<= 5 s", f"{rec['restore_s']:.1f} s", rec["restore_s"] <= 5.0)


def _latency_row(results: dict[str, Any]) -> Row:
    figure, target = "revocation latency at half load, p50 / p99", "<= 100 / 250 ms"
    lat = results.get("latency")
    if lat is None:
        return Row(figure, target, "not measured", None)
    met = lat["p50_ms"] <= 100 and lat["p99_ms"] <= 250
    return Row(figure, target, f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms", met)


def _gateway_rows(results: dict[str, Any]) -> list[Row]:
    """The gateway layer: deadline -> refused at nginx (the database layer's target), and the
    gate's own time per request (a small share of a request's budget)."""
    refusal_fig, own_fig = "deadline -> refused at nginx, half load, p99", "gate's own time, p99"
    gw = results.get("gateway")
    if gw is None or "skipped" in gw:
        return [
            Row(refusal_fig, "<= 300 ms", "not measured", None),
            Row(own_fig, "<= 5 ms", "not measured", None),
        ]
    p99, own = float(gw["latency"]["p99_ms"]), float(gw["gate_time"]["p99_ms"])
    return [
        Row(refusal_fig, "<= 300 ms", f"{p99:.0f} ms", p99 <= 300),
        Row(own_fig, "<= 5 ms", f"{own:.2f} ms at {gw['gate_time']['rate']:,.0f}/s", own <= 5),
    ]


def _mass_revoke_rows(results: dict[str, Any]) -> list[Row]:
    """The mass revocation of 100k sessions: command -> committed, then refused at each layer
    (the worst of the sampled sessions)."""
    commit_fig = "mass revocation, 100k sessions: command -> committed"
    layers = [
        ("api_refusal_after_commit", "API (listener)"),
        ("db_refusal_after_commit", "database (sink, guard)"),
        ("gateway_refusal_after_commit", "gateway (nginx, gate)"),
    ]
    figures = [
        f"mass revocation: refused at the {name} after the commit, max" for _, name in layers
    ]
    mr = results.get("mass_revoke")
    if mr is None or mr.get("sessions") != HUNDRED_K:
        return [Row(commit_fig, "<= 5 s", "not measured", None)] + [
            Row(fig, "<= 1 s", "not measured", None) for fig in figures
        ]
    took = float(mr["command_to_committed_s"])
    rows = [Row(commit_fig, "<= 5 s", f"{took:.2f} s", took <= 5.0)]
    for (key, _), fig in zip(layers, figures, strict=True):
        found = mr.get(key)
        if found is None or "skipped" in found:
            why = "not measured" if found is None else f"not measured ({found['skipped']})"
            rows.append(Row(fig, "<= 1 s", why, None))
        elif "max_s" not in found or found.get("n") != mr.get("sample"):
            rows.append(Row(fig, "<= 1 s", "not every sampled session refused", False))
        else:
            worst = float(found["max_s"])
            rows.append(Row(fig, "<= 1 s", f"{worst * 1000:.1f} ms", worst <= 1.0))
    return rows


def _keycloak_rows(results: dict[str, Any]) -> list[Row]:
    """Revocations out to Keycloak: deadline -> the Keycloak session ended (the back-channel
    logout token at the relying party), within the proof tests' second."""
    fig, target = "deadline -> Keycloak session ended, p50 / p99", "p99 <= 1000 ms"
    kc = results.get("keycloak_revocations")
    if kc is None or "skipped" in kc:
        return [Row(fig, target, "not measured", None)]
    ended = kc["ended"]
    text = f"{ended['p50_ms']:.0f} / {ended['p99_ms']:.0f} ms ({ended['samples']} sessions)"
    return [Row(fig, target, text, ended["p99_ms"] <= 1000)]


def _detect_rows(results: dict[str, Any]) -> list[Row]:
    det = results.get("detect")
    ratio_fig, headroom_fig = "detectors / bare faust agent", "detectors vs a 1:50 mix at full rate"
    if det is None:
        return [
            Row(ratio_fig, ">= 0.6", "not measured", None),
            Row(headroom_fig, ">= 2x headroom", "not measured", None),
        ]
    ratio = float(det["ratio"])
    rows = [Row(ratio_fig, ">= 0.6", f"{ratio:.2f}", ratio >= 0.6)]
    room = headroom(det, results.get("throughput", []))
    if room is None:
        return [*rows, Row(headroom_fig, ">= 2x headroom", "not measured", None)]
    _, _, times = room
    return [*rows, Row(headroom_fig, ">= 2x headroom", f"{times:.1f}x", times >= 2.0)]


def headroom(det: dict[str, Any], tput: list[dict[str, Any]]) -> tuple[float, float, float] | None:
    """(the enforcer's full rate, the audit records/s a 1:50 mix makes at it, the detectors'
    rate over that); None without a throughput figure."""
    if not tput:
        return None
    full = max(float(t["enforcer_rate"]) for t in tput)
    need = full * AUDIT_PER_INPUT
    return full, need, float(det["rate"]) / need


RowsOf = Callable[[dict[str, Any]], list[Row]]


def _ssf_row(results: dict[str, Any]) -> Row:
    figure, target = (
        "deadline -> SET accepted by an SSF push receiver, half load, p50 / p99",
        ("<= 300 ms p99"),
    )
    ssf = results.get("ssf")
    if ssf is None:
        return Row(figure, target, "not measured", None)
    lat = ssf["latency"]
    return Row(
        figure, target, f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms", lat["p99_ms"] <= 300
    )


ROWS: list[RowsOf] = [
    lambda r: [_ratio_row(r, "enforcer / ceiling, 1M", MEGA, "ratio_to_ceiling", 0.6)],
    lambda r: [_ratio_row(r, "enforcer / ceiling, 100k", HUNDRED_K, "ratio_to_ceiling", 0.75)],
    lambda r: [_ratio_row(r, "enforcer / raw consume, 1M", MEGA, "ratio_to_raw", 0.4)],
    lambda r: [_growth_row(r)],
    lambda r: [_ratio_row(r, "enforcer / bare faust agent, 1M", MEGA, "ratio_to_faust", 10.0)],
    lambda r: [_peer_row(r, "quix", "Quix Streams", 2.0)],
    lambda r: [_peer_row(r, "kstreams", "Kafka Streams", 1.0)],
    lambda r: [_rss_row(r)],
    lambda r: [_restore_row(r)],
    lambda r: [_latency_row(r)],
    _gateway_rows,
    lambda r: [_ssf_row(r)],
    _mass_revoke_rows,
    _detect_rows,
    _keycloak_rows,
]


def rows(results: dict[str, Any]) -> list[Row]:
    return [row for make in ROWS for row in make(results)]


def markdown(results: dict[str, Any]) -> list[str]:
    verdict = {True: "met", False: "**missed**", None: "-"}
    lines = [
        "",
        "## Targets (this run's figures)",
        "",
        "| figure | target | this run | |",
        "|---|---|---|---|",
    ]
    for row in rows(results):
        lines.append(f"| {row.figure} | {row.target} | {row.measured} | {verdict[row.met]} |")
    return lines
