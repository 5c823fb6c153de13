"""The drill's report: a text table, a JSON document and one PNG (refusal delays per layer)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from sessionwarden.audit.drill.audit import Audit, Violation

_MAX_LISTED = 50


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.0f}"


def table(result: Audit) -> str:
    """Per layer and reason: p50/p99/max refusal delay in ms; then every case's verdict and
    the first violation of each session and case (the first 50 of those)."""
    head = f"{'layer':<11} {'reason':<14} {'count':>8} {'p50':>8} {'p99':>8} {'max':>8}"
    lines = [
        f"refusal delay after the deadline (ms), tolerance {result.tolerance_s * 1000:.0f}",
        head,
    ]
    for s in result.stats:
        lines.append(f"{s.layer:<11} {s.reason:<14} {s.count:>8} {_ms(s.p50)} {_ms(s.p99)} "
                     f"{_ms(s.max)}")  # fmt: skip
    lines.append("")
    lines.append(f"{'case':<22} {'layer':<11} {'sessions':>8} {'attempts':>8} {'bypass':>6} "
                 f"{'cutoff':>6} {'unprov':>6}  expected")  # fmt: skip
    for name, row in result.cases.items():
        lines.append(f"{name:<22} {row['layer']!s:<11} {row['sessions']:>8} "
                     f"{row['attempts']:>8} {row['bypasses']:>6} {row['false_cutoffs']:>6} "
                     f"{row['unproven']:>6}  {row['expected']}")  # fmt: skip
    firsts = first_violations(result)
    for (kind, case, session), (v, n) in list(firsts.items())[:_MAX_LISTED]:
        lines.append(f"{kind.upper():<12} {case:<22} {session:<8} {v.path:<20} first "
                     f"{v.offset_s * 1000:+.0f} ms past the deadline ({n} attempt(s))")  # fmt: skip
    if len(firsts) > _MAX_LISTED:
        lines.append(f"... and {len(firsts) - _MAX_LISTED} more (see the JSON report)")
    verdict = "PASS" if result.passed else "FAIL"
    lines.append(f"\n{verdict}: {result.count('bypass')} bypass(es), "
                 f"{result.count('false_cutoff')} false cut-off(s), "
                 f"{result.count('unproven')} unproven")  # fmt: skip
    return "\n".join(lines)


def first_violations(result: Audit) -> dict[tuple[str, str, str], tuple[Violation, int]]:
    """Per (kind, case, session): its first violation and how many attempts violated."""
    firsts: dict[tuple[str, str, str], tuple[Violation, int]] = {}
    for v in result.violations:
        key = (v.kind, v.case, v.session)
        first, n = firsts.get(key, (v, 0))
        firsts[key] = (first, n + 1)
    return firsts


def document(result: Audit, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "tolerance_s": result.tolerance_s,
        "passed": result.passed,
        "bypasses": result.count("bypass"),
        "false_cutoffs": result.count("false_cutoff"),
        "unproven": result.count("unproven"),
        "stats": [asdict(s) for s in result.stats],
        "cases": result.cases,
        "violations": [asdict(v) for v in result.violations],
    }


def plot(result: Audit, path: Path) -> None:
    """One PNG: the distribution of refusal delays per layer (box plot, ms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted(result.delays)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if layers:
        ax.boxplot([[d * 1000 for d in result.delays[n]] for n in layers], whis=(1, 99))
        ax.set_xticks(range(1, len(layers) + 1), layers)
    ax.axhline(result.tolerance_s * 1000, color="red", linestyle="--", label="tolerance")
    ax.set_ylabel("refusal delay after the deadline (ms)")
    ax.set_title(f"Sessionwarden drill: {result.count('bypass')} bypass(es)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
