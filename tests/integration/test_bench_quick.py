"""`make bench-quick` as a smoke test: every benchmark runs end to end and reports (untimed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from bench.run import SECTIONS
from sessionwarden.testing.children import kill_tree
from tests.integration.harness import REPO


def test_quick_benchmarks_run_and_write_a_complete_report(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """The benchmark suite must keep working as the code changes; its numbers are not judged."""
    log = tmp_path / "bench.log"
    # Not the Keycloak sections: each would start a second Keycloak (25-100 s) beside the test
    # session's; test_keycloak_events.py and test_keycloak_revocations.py cover the same paths.
    only = ",".join(s for s in SECTIONS if s not in ("keycloak", "keycloak_revocations"))
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.run",
                "--quick",
                "--no-peers",
                "--only",
                only,
                "--out",
                str(tmp_path),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            status = proc.wait(900)
        except subprocess.TimeoutExpired:
            status = None
            kill_tree(proc.pid)  # bench.run and whatever it started: nothing outlives the test
            proc.wait()
    assert 0 == status, (
        f"bench.run ended with {status}; its output ended with:\n" + (log.read_text()[-5000:])
    )
    [report] = list(tmp_path.glob("*.json"))
    results = orjson.loads(report.read_bytes())
    assert {
        "throughput",
        "latency",
        "propagation",
        "recovery",
        "detect",
        "postgres",
        "metrics_cost",
        "browser",
        "websocket_close",
    } <= set(results)
    assert results["postgres"]["latency"]["samples"] > 0
    gateway = results["gateway"]
    assert "skipped" in gateway or gateway["latency"]["samples"] > 0, gateway
    assert (
        "skipped" in gateway
        or {"200": gateway["gate_time"]["samples"]} == (gateway["gate_time"]["statuses"])
    )
    assert "skipped" in results["browser"] or 10 == results["browser"]["sessions"]
    assert 30 == results["websocket_close"]["closed"], results["websocket_close"]
    cost = results["metrics_cost"]
    assert all(cost[m]["rate_on"] > 0 and cost[m]["rate_off"] > 0 for m in ("core", "drain"))
    tput = results["throughput"][0]
    assert tput["enforcer_rate"] > 0 and tput["ceiling_rate"] > 0 and tput["faust_rate"] > 0
    verify = results["recovery"]["verify"]["totals"]
    assert (0, 0, 0) == (verify["missed"], verify["early"], verify["spurious"])
    assert 5_000 == verify["correct"] + verify["late"]
    assert list(tmp_path.glob("*.md")) and list(tmp_path.glob("*-throughput.png"))
