"""The drill's audit on plain numbers: delays, bypasses, false cut-offs, unproven sessions."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from sessionwarden.audit.drill.audit import Attempt, Case, Deadline, audit, percentiles
from sessionwarden.audit.drill.report import document, plot, table

HTTP = Case("http-api", "http", "refused after the deadline")
LATE = Case("late-service", "http", "refused from the start", measured=False)


def tries(case: Case, session: str, outcomes: list[tuple[float, bool]]) -> list[Attempt]:
    return [Attempt(case.name, case.layer, session, "/api/data", t, ok) for t, ok in outcomes]


def test_delay_is_the_first_refusal_at_or_after_the_deadline() -> None:
    deadlines = {"s1": Deadline("s1", 10.0, "idle_timeout")}
    attempts = tries(HTTP, "s1", [(9.8, True), (9.9, True), (10.05, True), (10.2, False),
                                  (10.3, False), (12.0, False)])  # fmt: skip
    result = audit([HTTP], deadlines, attempts, tolerance_s=0.5)
    assert result.passed
    assert [(s.layer, s.reason, s.count) for s in result.stats] == [("http", "idle_timeout", 1)]
    assert result.stats[0].p50 == pytest.approx(0.2)
    assert result.delays == {"http": [pytest.approx(0.2)]}
    assert result.cases["http-api"]["attempts"] == 6


def test_success_past_the_tolerance_is_a_bypass_and_within_it_is_not() -> None:
    deadlines = {"s1": Deadline("s1", 10.0, "logout"), "s2": Deadline("s2", 10.0, "logout")}
    attempts = tries(HTTP, "s1", [(9.0, True), (10.4, True), (10.6, False)]) + tries(
        HTTP, "s2", [(9.0, True), (10.4, True), (10.7, True), (10.9, False)]
    )
    result = audit([HTTP], deadlines, attempts, tolerance_s=0.5)
    assert [(v.kind, v.session, round(v.offset_s, 3)) for v in result.violations] == [
        ("bypass", "s2", 0.7)
    ]
    assert result.cases["http-api"]["bypasses"] == 1
    assert not result.passed


def test_refusal_before_the_deadline_is_a_false_cutoff() -> None:
    deadlines = {"s1": Deadline("s1", 10.0, "idle_timeout")}
    attempts = tries(HTTP, "s1", [(9.0, True), (9.5, False), (10.1, False), (11.0, False)])
    result = audit([HTTP], deadlines, attempts, tolerance_s=0.5)
    assert [v.kind for v in result.violations] == ["false_cutoff"]
    assert result.count("false_cutoff") == 1 and result.count("bypass") == 0


def test_never_tried_late_enough_is_unproven() -> None:
    deadlines = {"s1": Deadline("s1", 10.0, "idle_timeout")}
    result = audit([HTTP], deadlines, tries(HTTP, "s1", [(9.0, True), (10.3, True)]), 0.5)
    assert [v.kind for v in result.violations] == ["unproven"]


def test_never_seen_granted_before_the_deadline_is_unproven() -> None:
    deadlines = {"s1": Deadline("s1", 10.0, "logout")}
    result = audit([HTTP], deadlines, tries(HTTP, "s1", [(10.2, False), (11.0, False)]), 0.5)
    assert [v.kind for v in result.violations] == ["unproven"]


def test_planned_but_never_tried_or_without_deadline_is_unproven() -> None:
    deadlines = {"s1": Deadline("s1", 10.0, "idle_timeout")}
    attempts = tries(HTTP, "s2", [(9.0, True), (12.0, False)])  # s2: no deadline known
    result = audit([HTTP], deadlines, attempts, 0.5, planned=[("http-api", "s1")])
    assert sorted((v.kind, v.session) for v in result.violations) == [
        ("unproven", "s1"),
        ("unproven", "s2"),
    ]
    assert result.stats == []


def test_unmeasured_case_judges_but_adds_no_delay() -> None:
    deadlines = {"s1": Deadline("s1", 10.0, "idle_timeout")}
    ok = audit([LATE], deadlines, tries(LATE, "s1", [(30.0, False), (30.1, False)]), 0.5)
    assert ok.passed and ok.stats == [] and ok.delays == {}
    bad = audit([LATE], deadlines, tries(LATE, "s1", [(30.0, True), (30.1, False)]), 0.5)
    assert [v.kind for v in bad.violations] == ["bypass"]


def test_percentiles_are_the_statistics_quantiles() -> None:
    values = [0.01 * i for i in range(1, 201)]
    q = statistics.quantiles(values, n=100, method="inclusive")
    assert percentiles(values) == (q[49], q[98], 2.0)
    assert percentiles([0.3]) == (0.3, 0.3, 0.3)
    with pytest.raises(ValueError):
        percentiles([])


def test_stats_split_by_layer_and_reason() -> None:
    ws = Case("websocket", "websocket", "closed 4401")
    deadlines = {f"s{i}": Deadline(f"s{i}", 10.0, "logout" if i % 2 else "idle_timeout")
                 for i in range(4)}  # fmt: skip
    attempts = []
    for i in range(4):
        attempts += tries(HTTP, f"s{i}", [(9.0, True), (10.0 + 0.1 * i, False), (11.0, False)])
        attempts += tries(ws, f"s{i}", [(9.0, True), (10.5, False), (11.0, False)])
    result = audit([HTTP, ws], deadlines, attempts, 0.5)
    keys = [(s.layer, s.reason, s.count) for s in result.stats]
    assert keys == [("http", "idle_timeout", 2), ("http", "logout", 2),
                    ("websocket", "idle_timeout", 2), ("websocket", "logout", 2)]  # fmt: skip
    assert sorted(result.delays["http"]) == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_report_table_json_and_png(tmp_path: Path) -> None:
    deadlines = {"s1": Deadline("s1", 10.0, "idle_timeout")}
    attempts = tries(HTTP, "s1", [(9.0, True), (10.1, False), (10.9, True)])
    result = audit([HTTP], deadlines, attempts, 0.5)
    text = table(result)
    assert "BYPASS" in text and "FAIL: 1 bypass(es)" in text
    doc = json.loads(json.dumps(document(result, {"sessions": 1})))
    assert doc["bypasses"] == 1 and doc["passed"] is False and doc["sessions"] == 1
    png = tmp_path / "drill.png"
    plot(result, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
