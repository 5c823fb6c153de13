"""What the enforcer's metrics count, fed by the real core (no Kafka: the registry is read)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from sessionwarden.config.settings import Settings, TopicNames
from sessionwarden.contracts.inputs import AuthEvent
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.metrics import EnforcerMetrics
from tests.unit.enforcer.factories import T0, activity, login, logout, policy


def _metrics() -> tuple[EnforcerMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return EnforcerMetrics(Settings(), TopicNames(), registry, wall=lambda: T0 + 500), registry


def _applied(
    metrics: EnforcerMetrics, core: PartitionEnforcer, event: AuthEvent, now: float, received: float
) -> None:
    """What the shell does with each event: the core decides, the metrics record the outcome."""
    metrics.applied(event.type, core.apply(event, now, received))


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_events_are_counted_by_type_and_outcome_once_the_batch_commits() -> None:
    """Duplicates, late activity and rejected events are told apart from applied ones."""
    metrics, registry = _metrics()
    core = PartitionEnforcer(policy(), 0)
    core.state.begin()
    first = login(0, "s1")
    _applied(metrics, core, first, T0, T0)
    _applied(metrics, core, first, T0, T0)  # the same event again
    _applied(metrics, core, login(10_000, "s2"), T0, T0)  # far in the future: dead-lettered
    _applied(metrics, core, logout(5), T0 + 5, T0 + 5)
    _applied(metrics, core, activity(1), T0 + 6, T0 + 6)  # made before the logout, read after it
    _applied(metrics, core, login(7, "s3"), T0 + 7, T0 + 7)
    _applied(metrics, core, activity(8, "s3", user="u2"), T0 + 8, T0 + 8)  # another user's session
    assert 0 == _value(
        registry, "sessionwarden_enforcer_events_total", type="login", outcome="applied"
    )
    metrics.batch_done(7, 0.0, {}, _NoWatermarks())
    expected = {
        ("login", "applied"): 2,
        ("login", "duplicate"): 1,
        ("login", "dead_lettered"): 1,
        ("logout", "applied"): 1,
        ("activity", "late"): 1,
        ("activity", "refused"): 1,
    }
    for (kind, outcome), n in expected.items():
        got = _value(registry, "sessionwarden_enforcer_events_total", type=kind, outcome=outcome)
        assert (kind, outcome, n) == (kind, outcome, got)


def test_an_aborted_batch_counts_nothing_but_its_abort() -> None:
    """The batch is read again after an abort: counting it twice would inflate every rate."""
    metrics, registry = _metrics()
    core = PartitionEnforcer(policy(), 0)
    core.state.begin()
    _applied(metrics, core, login(0, "s1"), T0, T0)
    metrics.dead_lettered("undecodable")
    metrics.aborted("_TIMED_OUT")
    metrics.batch_done(0, 0.0, {}, _NoWatermarks())
    assert 0 == _value(
        registry, "sessionwarden_enforcer_events_total", type="login", outcome="applied"
    )
    assert 0 == _value(registry, "sessionwarden_enforcer_dead_letters_total", reason="undecodable")
    assert 1 == _value(
        registry, "sessionwarden_enforcer_transaction_aborts_total", cause="_TIMED_OUT"
    )


def test_a_revocation_delay_is_measured_from_its_effective_time() -> None:
    """The delay histogram answers "how late did we revoke" with sub-second buckets."""
    metrics, registry = _metrics()
    core = PartitionEnforcer(policy(), 0)
    core.state.begin()
    core.apply(login(0, "s1"), T0)
    core.fire_due(T0 + 1000, T0 + 500)
    revocations = [e.value for e in core.state.out if e.value["type"] == "revocation"]
    metrics.revoked(revocations[0])  # effective at T0 + 100 (idle), committed at T0 + 500
    metrics.batch_done(0, 0.0, {}, _NoWatermarks())
    assert 1 == _value(registry, "sessionwarden_enforcer_revocations_total", reason="idle_timeout")
    assert 400 == _value(registry, "sessionwarden_enforcer_revocation_delay_seconds_sum")
    assert 0 == _value(
        registry, "sessionwarden_enforcer_revocation_delay_seconds_bucket", le="300.0"
    )


def test_restores_forwards_and_recoveries_are_counted() -> None:
    """One restore observation per partition with its records; forwarded records once their
    batch commits; a recovery counts by cause and gives every partition up."""
    metrics, registry = _metrics()
    metrics.restore_begin([0, 1])
    assert 2 == _value(registry, "sessionwarden_enforcer_restoring")
    metrics.restore_end([(0, _Restored(records=7)), (1, _Restored(records=3))])
    assert 0 == _value(registry, "sessionwarden_enforcer_restoring")
    assert 2 == _value(registry, "sessionwarden_enforcer_restore_duration_seconds_count")
    assert 10 == _value(registry, "sessionwarden_enforcer_restore_records_total")
    assert 2 == _value(registry, "sessionwarden_enforcer_assigned_partitions")
    metrics.partitions_revoked([1])
    assert 1 == _value(registry, "sessionwarden_enforcer_assigned_partitions")
    metrics.forwarded()
    assert 0 == _value(registry, "sessionwarden_enforcer_forwarded_records_total")
    metrics.batch_done(1, 0.0, {}, _NoWatermarks())
    assert 1 == _value(registry, "sessionwarden_enforcer_forwarded_records_total")
    metrics.forwarded()
    metrics.recovering("commit_transaction: _TIMED_OUT")
    metrics.batch_done(0, 0.0, {}, _NoWatermarks())
    assert 1 == _value(registry, "sessionwarden_enforcer_forwarded_records_total")
    assert 1 == _value(
        registry, "sessionwarden_enforcer_recoveries_total", cause="commit_transaction: _TIMED_OUT"
    )
    assert metrics.progress is not None
    assert "recovering" == metrics.progress.readiness().reason
    assert 0 == _value(registry, "sessionwarden_enforcer_assigned_partitions")


class _Restored:
    def __init__(self, records: int) -> None:
        self.records = records
        self.started = time.monotonic() - 0.5


class _NoWatermarks:
    def get_watermark_offsets(
        self, partition: object, timeout: float = 0, cached: bool = True
    ) -> tuple[int, int]:
        raise AssertionError("no partitions, no lag to read")


class _RecordingWatermarks:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_watermark_offsets(
        self, partition: Any, timeout: float = 0, cached: bool = True
    ) -> tuple[int, int]:
        self.asked.append(partition.topic)
        return 0, 12


def test_lag_is_read_on_the_input_topic_the_loop_reads_now() -> None:
    """The enforcer benchmark's loop reads a shared input: lag is read on that topic."""
    topics = TopicNames("fresh.", input="shared.auth.events")
    registry = CollectorRegistry()
    metrics = EnforcerMetrics(Settings(), topics, registry, wall=lambda: T0 + 500)
    part = SimpleNamespace(
        next_offset=10,
        position=10,
        enforcer=SimpleNamespace(state=SimpleNamespace(received_watermark=T0 + 499)),
    )
    consumer = _RecordingWatermarks()
    metrics._refresh_lag({0: part}, consumer)  # type: ignore[dict-item]
    assert ["shared.auth.events"] == consumer.asked
    assert 2 == _value(registry, "sessionwarden_enforcer_consumer_lag_records", partition="0")


class _InvalidWatermarks:
    """What a consumer answers for a partition whose high watermark it does not know."""

    def get_watermark_offsets(
        self, partition: Any, timeout: float = 0, cached: bool = True
    ) -> tuple[int, int]:
        return -1001, -1001


def test_an_unknown_high_watermark_is_not_ready() -> None:
    """Readiness must not read "caught up" from a lag it could not measure."""
    metrics, _ = _metrics()
    metrics.restore_end([(0, _Restored(records=0))])
    part = SimpleNamespace(
        next_offset=0,
        position=0,
        enforcer=SimpleNamespace(state=SimpleNamespace(received_watermark=0)),
    )
    metrics._refresh_lag({0: part}, _InvalidWatermarks())  # type: ignore[dict-item]
    assert metrics.progress is not None
    assert (False, "catching up") == (
        metrics.progress.readiness().ok,
        metrics.progress.readiness().reason,
    )
    metrics._refresh_lag({0: part}, _RecordingWatermarks())  # type: ignore[dict-item]
    assert metrics.progress.readiness().ok, "measured again: 12 records behind is ready"


def test_fetch_stalls_are_counted_by_consumer_from_zero() -> None:
    """A consumer that stopped fetching is an operator's business: exported, not only logged,
    and every consumer's series exists at zero so the first stall shows up in a rate."""
    metrics, registry = _metrics()
    name = "sessionwarden_enforcer_fetch_stalls_total"
    consumers = ("input", "commands", "restore")
    assert {"input": 0.0, "commands": 0.0, "restore": 0.0} == {
        c: registry.get_sample_value(name, {"consumer": c}) for c in consumers
    }
    metrics.fetch_stalled("input")
    metrics.fetch_stalled("restore")
    metrics.fetch_stalled("restore")
    assert (1, 0, 2) == tuple(_value(registry, name, consumer=c) for c in consumers)
