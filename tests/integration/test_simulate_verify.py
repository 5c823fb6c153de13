"""`simulate` + `verify` end to end: the product's own enforcement audit."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import orjson

from sessionwarden.audit.simulate import simulate
from sessionwarden.audit.verify import run_verify
from sessionwarden.config.settings import Settings
from sessionwarden.policy import load_policy
from tests.integration.harness import REPO, EnforcerProcess

SIM = REPO / "tests/fixtures/policies/sim.toml"
BROKEN = REPO / "tests/fixtures/policies/sim_idle_doubled.toml"


def _run(settings: Settings, enforcer_policy: Path, tmp_path: Path) -> tuple[int, dict, str]:
    proc = EnforcerProcess(settings, policy=enforcer_policy)
    out = io.StringIO()
    try:
        proc.wait_assigned()
        truth = tmp_path / "truth.json"
        simulate(
            settings, load_policy(SIM), users=24, seed=42, rate=40.0, truth_path=truth, out=out
        )
        report = tmp_path / "report.json"
        code = run_verify(settings, truth, 2.0, report, tmp_path / "latency.png", out=out)
    finally:
        proc.stop()
    return code, orjson.loads(report.read_bytes()), out.getvalue()


def test_simulated_run_verifies_with_no_miss_early_or_spurious(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """A correctly configured enforcer passes its own audit against the ground truth."""
    code, report, text = _run(settings_factory(), SIM, tmp_path)
    assert 0 == code, text
    assert {"missed": 0, "early": 0, "spurious": 0} == {
        k: report["totals"][k] for k in ("missed", "early", "spurious")
    }
    assert report["totals"]["correct"] >= 20
    assert report["ended_session_used"]["expected"] == report["ended_session_used"]["seen"], text
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")


def test_doubled_idle_timeout_fails_verification_as_missed(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """An enforcer whose idle timeout is twice the policy lets sessions outlive their deadline."""
    code, report, text = _run(settings_factory(), BROKEN, tmp_path)
    assert 1 == code, text
    assert report["by_reason"]["idle_timeout"]["missed"] > 0
    assert 0 == report["totals"]["early"]
