"""The alert rules and the Grafana dashboard only name metrics the processes really export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from sessionwarden.config.settings import Settings, TopicNames
from sessionwarden.detect.metrics import DetectMetrics
from sessionwarden.enforcer.metrics import EnforcerMetrics
from sessionwarden.sdk.listener_metrics import ListenerCollector
from tests.unit.sdk.test_listener import Rig

INFRA = Path(__file__).resolve().parents[3] / "infra"
RULES = INFRA / "prometheus/alerts.yml"
DASHBOARD = INFRA / "grafana/sessionwarden.json"
METRIC = re.compile(r"\bsessionwarden_[a-z0-9_]+")
REQUIRED_ALERTS = {
    "SessionwardenEnforcerLoopStalled",
    "SessionwardenEnforcerLagAboveBudget",
    "SessionwardenRevocationDelayP99AboveBudget",
    "SessionwardenTransactionAbortRate",
    "SessionwardenListenerStale",
}


def exported() -> set[str]:
    """Every sample name the enforcer, detect and listener registries can produce."""
    registry = CollectorRegistry()
    EnforcerMetrics(Settings(), TopicNames(), registry)
    DetectMetrics(Settings(), registry)
    registry.register(ListenerCollector(Rig().listener))
    names = set()
    for family in registry.collect():
        names.add(family.name)
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",),
        }[family.type]
        names.update(family.name + s for s in suffixes)
    return names


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_every_required_alert_exists_with_a_severity_and_a_summary() -> None:
    """Loop stalled, lag, revocation delay, abort rate and listener staleness are alerted on."""
    found = {r["alert"]: r for r in rules()}
    assert REQUIRED_ALERTS <= set(found)
    for rule in found.values():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_alert_expressions_name_only_exported_metrics() -> None:
    """A typo in a metric name makes an alert silently never fire."""
    names = exported()
    for rule in rules():
        used = set(METRIC.findall(rule["expr"]))
        assert used or rule["expr"].startswith("up{"), rule["alert"]
        assert set() == used - names, rule["alert"]


def test_dashboard_panels_query_only_exported_metrics() -> None:
    """Every panel shows a series the processes export; ids are unique for Grafana."""
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    names = exported()
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert len(exprs) >= 20
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used and set() == used - names, expr
    assert {"datasource", "instance"} == {v["name"] for v in dashboard["templating"]["list"]}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_their_tests() -> None:
    """Prometheus itself parses the rules and runs their unit tests (alerts_test.yml)."""
    for args in (["check", "rules", str(RULES)], ["test", "rules", "alerts_test.yml"]):
        proc = subprocess.run(
            ["promtool", *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60
        )
        assert 0 == proc.returncode, proc.stdout + proc.stderr
