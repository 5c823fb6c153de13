"""The firing-horizon rule on broker time, with a fake clock."""

from __future__ import annotations

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

from sessionwarden.enforcer.engine.horizon import (
    NEVER,
    PartitionClock,
    firing_horizon,
    received_time,
)

GRACE = 2.0


def test_broker_append_time_is_used_and_create_time_is_not() -> None:
    assert 1234.5 == received_time(
        (TIMESTAMP_LOG_APPEND_TIME, 1_234_500), TIMESTAMP_LOG_APPEND_TIME
    )
    assert received_time((TIMESTAMP_CREATE_TIME, 1_234_500), TIMESTAMP_LOG_APPEND_TIME) is None


def test_nothing_read_proves_nothing() -> None:
    clock = PartitionClock(GRACE)
    assert NEVER == clock.horizon(now=1000.0, budget=0.0)
    assert clock.needs_probe(deadline=990.0, budget=0.0)


def test_a_backlog_proves_its_append_times_minus_grace_and_budget() -> None:
    clock = PartitionClock(GRACE)
    for r in (100.0, 105.0, 103.0):  # append times of a backlog being read, now = 1000
        clock.observe(r)
    assert 103.0 == clock.horizon(now=1000.0, budget=0.0)
    assert 93.0 == clock.horizon(now=1000.0, budget=10.0)
    assert not clock.needs_probe(deadline=103.0, budget=0.0)
    assert clock.needs_probe(deadline=103.5, budget=0.0)


def test_records_without_append_time_move_nothing() -> None:
    """CreateTime records (a producer clock, maybe far ahead) never move the horizon."""
    clock = PartitionClock(GRACE)
    clock.observe(None)
    assert NEVER == clock.read_through()


def test_a_probe_proves_its_wall_time_once_read_up_to_its_offset() -> None:
    clock = PartitionClock(GRACE)
    clock.probed(taken=500.0, end=10, read_to=4)
    assert NEVER == clock.horizon(now=501.0, budget=0.0)
    assert not clock.needs_probe(deadline=499.0, budget=0.0)  # one is pending
    clock.advance(read_to=9)
    assert NEVER == clock.horizon(now=501.0, budget=0.0)
    clock.advance(read_to=10)
    assert 500.0 == clock.horizon(now=501.0, budget=0.0)
    assert 495.0 == clock.horizon(now=501.0, budget=5.0)
    clock.probed(taken=510.0, end=10, read_to=10)  # already caught up: proven at once
    assert 510.0 == clock.horizon(now=511.0, budget=0.0)


def test_never_past_now() -> None:
    """A broker clock ahead of ours does not make deadlines fire before they are due."""
    assert 1000.0 == firing_horizon(now=1000.0, read_through=1050.0, budget=0.0)
    assert 1000.0 == firing_horizon(now=1000.0, read_through=1050.0, budget=10.0)
    assert 1040.0 == firing_horizon(now=2000.0, read_through=1050.0, budget=10.0)


def test_an_aborted_batch_unproves_what_it_read() -> None:
    clock = PartitionClock(GRACE)
    clock.observe(100.0)
    clock.begin()
    clock.observe(200.0)
    clock.probed(taken=300.0, end=5, read_to=5)
    assert 300.0 == clock.read_through()
    clock.abort()
    assert 98.0 == clock.read_through()
    assert clock.probe is None


def test_an_invalid_end_offset_proves_nothing() -> None:
    """A frozen broker answers OFFSET_INVALID (-1001): taken as an end offset, every deadline
    before the probe's time would fire although the records that extend those sessions may not
    have been read yet (early revocations)."""
    clock = PartitionClock(GRACE)
    clock.probed(taken=500.0, end=-1001, read_to=4)
    assert NEVER == clock.horizon(now=501.0, budget=0.0)
    assert clock.needs_probe(deadline=499.0, budget=0.0), "asked again, nothing pending"
    clock.probed(taken=500.0, end=-1001, read_to=-1001)
    assert NEVER == clock.horizon(now=501.0, budget=0.0)


def test_a_pending_probe_is_never_proven_by_an_invalid_position() -> None:
    clock = PartitionClock(GRACE)
    clock.probed(taken=500.0, end=0, read_to=-1001)  # an empty partition: proven at once
    assert 500.0 == clock.horizon(now=501.0, budget=0.0)
