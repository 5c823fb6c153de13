"""The opt-in listener collector reads a real listener (over the fake consumer) at scrape time."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

from sessionwarden.sdk.listener_metrics import ListenerCollector
from tests.unit.sdk.fakes import TOPIC, revocation
from tests.unit.sdk.test_listener import BUDGET, Rig


def _sample(registry: CollectorRegistry, name: str) -> float:
    got = registry.get_sample_value(name, {"topic": TOPIC})
    assert got is not None, name
    return got


def test_set_size_staleness_and_health_follow_the_listener() -> None:
    """Operators alert on a stale listener before it vouches for a revoked session."""
    rig = Rig()
    registry = CollectorRegistry()
    registry.register(ListenerCollector(rig.listener))
    rig.add(revocation("s-1"), 0)
    rig.add(revocation("s-2"), 1)
    rig.start()
    assert math.isinf(_sample(registry, "sessionwarden_listener_staleness_seconds"))
    assert 0 == _sample(registry, "sessionwarden_listener_ready")
    rig.steps()
    assert 2 == _sample(registry, "sessionwarden_listener_revoked_sessions")
    assert 2 == _sample(registry, "sessionwarden_listener_revocations_total")
    assert (1, 1) == (
        _sample(registry, "sessionwarden_listener_ready"),
        _sample(registry, "sessionwarden_listener_healthy"),
    )
    rig.consumer.down = True
    rig.steps(int(BUDGET) + 2, seconds=1.0)
    assert 0 == _sample(registry, "sessionwarden_listener_healthy")
    assert _sample(registry, "sessionwarden_listener_staleness_seconds") > BUDGET
    assert BUDGET == _sample(registry, "sessionwarden_listener_staleness_budget_seconds")


def test_failing_probes_and_rebuilds_are_exported() -> None:
    """Operators see a listener that cannot ask the broker, and what it did about it."""
    rig = Rig()
    registry = CollectorRegistry()
    registry.register(ListenerCollector(rig.listener))
    rig.start()
    rig.steps()
    rig.consumer.fenced = True
    rig.steps(16, seconds=0.25)
    assert _sample(registry, "sessionwarden_listener_failing_probes") >= 2
    assert 1 == _sample(registry, "sessionwarden_listener_metadata_refreshes_total")
    rig.steps(80, seconds=0.25)
    assert 0 == _sample(registry, "sessionwarden_listener_failing_probes")
    assert 1 == _sample(registry, "sessionwarden_listener_admin_rebuilds_total")
