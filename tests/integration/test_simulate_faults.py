"""`simulate --faults all` + `verify` end to end: skewed clocks, reordering, producer delay,
duplicates and a foreign partitioner, against an enforcer with a producer-delay budget."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import orjson

from sessionwarden.audit.faults import FAULTS
from sessionwarden.audit.simulate import simulate
from sessionwarden.audit.verify import run_verify
from sessionwarden.config.settings import Settings
from sessionwarden.policy import load_policy
from tests.integration.harness import REPO, EnforcerProcess

SIM = REPO / "tests/fixtures/policies/sim.toml"
BUDGET = 1.0


def test_every_fault_mode_verifies_with_no_miss_early_or_spurious(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    proc = EnforcerProcess(settings, policy=SIM, SESSIONWARDEN_PRODUCER_DELAY_BUDGET_S=str(BUDGET))
    out = io.StringIO()
    truth_path, report_path = tmp_path / "truth.json", tmp_path / "report.json"
    try:
        proc.wait_assigned()
        plan = simulate(
            settings,
            load_policy(SIM),
            users=80,
            seed=9,
            rate=40.0,
            truth_path=truth_path,
            out=out,
            faults=frozenset(FAULTS),
            budget=BUDGET,
        )
        code = run_verify(settings, truth_path, 2.0, report_path, None, out=out)
    finally:
        proc.stop()
    text = out.getvalue()
    report = orjson.loads(report_path.read_bytes())
    print(text)
    assert {"missed": 0, "early": 0, "spurious": 0} == {
        k: report["totals"][k] for k in ("missed", "early", "spurious")
    }, text
    assert 0 == code, text
    for kind in ("ended_session_used", "activity_after_revocation"):
        assert report[kind]["expected"] == report[kind]["seen"], text
    assert report["activity_after_revocation"]["expected"] > 0
    assert {"skew_ahead", "skew_behind", "delay", "duplicate", "partitioner"} <= set(plan.faults)
    assert report["by_reason"]["never_live"]["correct"] > 0
