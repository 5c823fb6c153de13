"""`sessionwarden verify`: compare what the enforcer revoked with the simulation's ground truth.

Per expected reason, each session is **correct** (right reason, right deadline, revoked within
the tolerance), **missed** (never revoked, or revoked only as of a later deadline: it outlived
its deadline), **early** (revoked before its deadline), **late** (revoked as of the right
deadline, but emitted beyond the tolerance after it) or **spurious** (revoked for the wrong
cause, revoked twice, or revoked without any expected end). Latency is emitted_at minus the
deadline (or minus the cause time, for logouts and role changes).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from sessionwarden.config.settings import Settings
from sessionwarden.errors import ConfigError
from sessionwarden.kafka.reading import read_topic
from sessionwarden.kafka.security import KafkaSecurity
from sessionwarden.ops.stats import percentiles

CATEGORIES = ("correct", "missed", "early", "late", "spurious")
AUDITED = {  # audit records the truth expects per session -> how problems name them
    "ended_session_used": "ended-session use",
    "activity_after_revocation": "activity after revocation",
}
NEVER_LIVE = "never_live"  # a session the truth expects no revocation for (logged out first)
FAILING = ("missed", "early", "spurious")
EPSILON = 0.002  # seconds: event times are carried with microsecond precision


def _ts(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


@dataclass
class Report:
    run_id: str
    tolerance: float
    rows: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ended_session_used_expected: int = 0
    ended_session_used_seen: int = 0
    after_revocation_expected: int = 0
    after_revocation_seen: int = 0

    def total(self, category: str) -> int:
        return sum(row[category] for row in self.rows.values())

    @property
    def ok(self) -> bool:
        return all(self.total(c) == 0 for c in FAILING)

    def latency_summary(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        values = self.latencies
        p90, p99 = percentiles(values, 90, 99)
        return {
            "count": len(values),
            "p50_ms": statistics.median(values) * 1000,
            "p90_ms": p90 * 1000,
            "p99_ms": p99 * 1000,
            "max_ms": max(values) * 1000,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "tolerance_s": self.tolerance,
            "by_reason": {reason: dict(row) for reason, row in sorted(self.rows.items())},
            "totals": {c: self.total(c) for c in CATEGORIES},
            "latency": self.latency_summary(),
            "ended_session_used": {
                "expected": self.ended_session_used_expected,
                "seen": self.ended_session_used_seen,
            },
            "activity_after_revocation": {
                "expected": self.after_revocation_expected,
                "seen": self.after_revocation_seen,
            },
            "problems": self.problems[:200],
        }


SessionKey = tuple[str | None, str]
"""(tenant, session_id); the tenant is None for ground truth written without tenants."""


def audit(
    truth: dict[str, Any],
    revocations: list[dict[str, Any]],
    used: list[dict[str, Any]],
    tolerance: float,
) -> Report:
    """Classify every session of the run (pure). Sessions are (tenant, session_id): the truth
    names its tenant (``tenant``, or per session), records name theirs."""
    report = Report(truth["run_id"], tolerance)
    default = truth.get("tenant")
    scoped = default is not None or any("tenant" in w for w in truth["sessions"].values())

    def record_key(rec: dict[str, Any]) -> SessionKey:
        return (rec.get("tenant") if scoped else None, rec["session_id"])

    by_session: dict[SessionKey, list[dict[str, Any]]] = defaultdict(list)
    for rec in revocations:
        if rec.get("type") == "revocation":
            by_session[record_key(rec)].append(rec)
    expected: dict[SessionKey, dict[str, Any]] = {
        (want.get("tenant", default), sid): want for sid, want in truth["sessions"].items()
    }
    for key, want in sorted(expected.items(), key=lambda kv: _order(kv[0])):
        category = _classify(_name(key), want, by_session.get(key, []), tolerance, report)
        report.rows[want["reason"]][category] += 1
    for key, recs in sorted(by_session.items(), key=lambda kv: _order(kv[0])):
        if key not in expected:
            report.rows[recs[0]["reason"]]["spurious"] += len(recs)
            report.problems.append(f"{_name(key)}: revoked ({recs[0]['reason']}) without cause")
    counted: dict[str, tuple[int, int]] = {}
    for kind, label in AUDITED.items():
        wanted: Counter[SessionKey] = Counter((default, sid) for sid in truth.get(kind, []))
        mine = [u for u in used if u.get("type", "ended_session_used") == kind]
        seen: Counter[SessionKey] = Counter(k for k in map(record_key, mine) if k in expected)
        counted[kind] = (sum(wanted.values()), sum(seen.values()))
        report.problems.extend(
            f"{_name(k)}: {seen[k]} {label}(s) audited, {wanted[k]} expected"
            for k in sorted(set(wanted) | set(seen), key=_order)
            if wanted[k] != seen[k]
        )
    report.ended_session_used_expected, report.ended_session_used_seen = counted[
        "ended_session_used"
    ]
    report.after_revocation_expected, report.after_revocation_seen = counted[
        "activity_after_revocation"
    ]
    return report


def _order(key: SessionKey) -> tuple[str, str]:
    return (key[0] or "", key[1])


def _name(key: SessionKey) -> str:
    return key[1] if key[0] is None else f"{key[0]}/{key[1]}"


def _classify(
    sid: str, want: dict[str, Any], recs: list[dict[str, Any]], tolerance: float, report: Report
) -> str:
    if want["reason"] == NEVER_LIVE:
        if recs:
            report.problems.append(f"{sid}: revoked ({recs[0]['reason']}) but it never lived")
            return "spurious"
        return "correct"
    if not recs:
        report.problems.append(f"{sid}: never revoked (expected {want['reason']} at {want['at']})")
        return "missed"
    if len({r["revocation_id"] for r in recs}) > 1:
        report.problems.append(f"{sid}: revoked {len(recs)} times")
        return "spurious"
    rec = recs[0]
    effective = _ts(rec["effective_at"])
    if effective < want["at"] - EPSILON:
        report.problems.append(
            f"{sid}: revoked early ({rec['reason']} at {effective:.3f}, "
            f"deadline {want['at']:.3f}: {want['at'] - effective:.3f}s early)"
        )
        return "early"
    if rec["reason"] != want["reason"]:
        report.problems.append(f"{sid}: revoked for {rec['reason']}, expected {want['reason']}")
        return "spurious"
    if effective > want.get("at_max", want["at"]) + EPSILON:
        report.problems.append(
            f"{sid}: outlived its deadline {want['at']:.3f}: revoked as of {effective:.3f}"
        )
        return "missed"
    latency = _ts(rec["emitted_at"]) - max(effective, want["at"])
    report.latencies.append(latency)
    if latency > tolerance:
        report.problems.append(f"{sid}: revoked {latency:.3f}s after its deadline")
        return "late"
    return "correct"


def render_text(report: Report) -> str:
    lines = [f"verification of run {report.run_id} (tolerance {report.tolerance:g}s)", ""]
    header = f"{'reason':<22}" + "".join(f"{c:>10}" for c in CATEGORIES)
    lines += [header, "-" * len(header)]
    for reason, row in sorted(report.rows.items()):
        lines.append(f"{reason:<22}" + "".join(f"{row[c]:>10}" for c in CATEGORIES))
    lines.append("-" * len(header))
    lines.append(f"{'total':<22}" + "".join(f"{report.total(c):>10}" for c in CATEGORIES))
    lat = report.latency_summary()
    if lat:
        lines += [
            "",
            f"latency (emitted - deadline): p50 {lat['p50_ms']:.0f} ms, p90 {lat['p90_ms']:.0f} ms,"
            f" p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms over {lat['count']:.0f}",
        ]
    lines.append(
        f"ended-session use: expected {report.ended_session_used_expected}, "
        f"audited {report.ended_session_used_seen}"
    )
    lines.append(
        f"activity after revocation: expected {report.after_revocation_expected}, "
        f"audited {report.after_revocation_seen}"
    )
    lines += ["", *[f"  ! {p}" for p in report.problems[:30]]]
    if len(report.problems) > 30:
        lines.append(f"  ... and {len(report.problems) - 30} more")
    lines.append(
        "PASS: no session outlived its deadline, none was cut early"
        if report.ok
        else "FAIL: " + ", ".join(f"{report.total(c)} {c}" for c in FAILING)
    )
    return "\n".join(lines)


def write_histogram(latencies: list[float], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist([x * 1000 for x in latencies], bins=40, color="#3a6ea5")
    ax.set_xlabel("revocation latency (ms, emitted - deadline)")
    ax.set_ylabel("sessions")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# The Kafka side: wait for the run to finish, read its records, report.


def read_run(settings: Settings, topic: str, run_id: str) -> list[dict[str, Any]]:
    docs = []
    security = KafkaSecurity.from_settings(settings.kafka).librdkafka()
    for _, value in read_topic(settings.kafka.bootstrap_servers, topic, timeout=2.0, **security):
        if run_id.encode() in value:  # cheap pre-filter: every id of the run carries it
            doc = orjson.loads(value)
            if str(doc.get("session_id", "")).startswith(run_id):
                docs.append(doc)
    return docs


def run_verify(
    settings: Settings,
    truth_path: Path,
    tolerance: float,
    json_path: Path | None,
    png_path: Path | None,
    wait: bool = True,
    out: TextIO = sys.stdout,
) -> int:
    try:
        truth = orjson.loads(truth_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read ground truth {truth_path}: {exc}") from exc
    until = truth["last_deadline"] + tolerance
    if wait and time.time() < until:
        out.write(f"waiting {until - time.time():.1f}s for the run's last deadline to pass\n")
        out.flush()
        time.sleep(until - time.time())
    revocations = read_run(settings, settings.topics.revocations, truth["run_id"])
    used = [
        d
        for d in read_run(settings, settings.topics.audit, truth["run_id"])
        if d.get("type") in ("ended_session_used", "activity_after_revocation")
    ]
    report = audit(truth, revocations, used, tolerance)
    out.write(render_text(report) + "\n")
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
        out.write(f"JSON report: {json_path}\n")
    if png_path is not None and report.latencies:
        write_histogram(report.latencies, str(png_path), f"run {report.run_id}")
        out.write(f"latency histogram: {png_path}\n")
    return 0 if report.ok else 1
