"""When a user's document can no longer change a judgment, and the index a sweep pops from:
plain numbers for event times, no Kafka."""

from __future__ import annotations

import pytest

from sessionwarden.detect.alerts import CooldownRecord
from sessionwarden.detect.detectors import Expiry, Grant
from sessionwarden.detect.expiry import NEVER, ExpiryIndex, Retention, expired
from sessionwarden.detect.tables import EXPIRATIONS, GRANTS, TABLES, DetectState, apply_writes
from tests.unit.detect.factories import T0

ALICE = ("acme", "alice")
BOB = ("acme", "bob")
CAROL = ("acme", "carol")
RETENTION = Retention({EXPIRATIONS: 60.0, GRANTS: 120.0}, cooldown=300.0)
LATE = 120.0  # the longest window


def tables_with(*writes: object) -> dict[str, dict[object, bytes]]:
    tables: dict[str, dict[object, bytes]] = {name: {} for name in TABLES}
    apply_writes(tables, list(writes))  # type: ignore[arg-type]
    return tables


def state(tables: dict[str, dict[object, bytes]]) -> DetectState:
    return DetectState(tables, 60.0, 120.0)


def test_the_lateness_allowed_is_the_longest_window() -> None:
    assert LATE == RETENTION.lateness


def test_an_empty_document_has_always_expired() -> None:
    assert (NEVER, True) == (RETENTION.expires(tables_with()), expired(NEVER, T0))


def test_a_bucket_of_marks_expires_when_no_record_within_the_lateness_could_read_it() -> None:
    """A read at t takes t's bucket and the one a window before: a bucket starting at s is
    read by records up to s + 2W; records may be up to the lateness behind the clock."""
    tables = tables_with()
    tables = tables_with(
        state(tables).expirations.append(tables, ALICE, Expiry(T0 + 70, "e1", "s1", "idle"))
    )
    bucket_start = T0 + 60
    assert bucket_start + 2 * 60 + LATE == RETENTION.expires(tables)
    tables = tables_with(
        state(tables).grants.append(tables, ALICE, Grant(T0 + 10, "g1", 2, 10, 40, ("s",), ()))
    )
    assert T0 + 2 * 120 + LATE == RETENTION.expires(tables)  # the grant's bucket, latest


def test_a_live_session_expires_a_lateness_after_its_absolute_deadline() -> None:
    tables = tables_with(
        state(tables_with()).put_sessions(ALICE, {"s1": (T0, T0 + 500), "s2": (T0, T0 + 900)})
    )
    assert T0 + 900 + LATE == RETENTION.expires(tables)


def test_a_cooldown_expires_a_lateness_after_its_period() -> None:
    record = CooldownRecord(T0 + 5, "high", suppressed=3)
    tables = tables_with(state(tables_with()).put_cooldown(ALICE, "ended_session_used", record))
    assert T0 + 5 + 300 + LATE == RETENTION.expires(tables)


@pytest.mark.parametrize(("clock", "gone"), [(T0 + 99.9, False), (T0 + 100, True)])
def test_a_document_has_expired_from_its_expiry_time_on(clock: float, gone: bool) -> None:
    assert gone == expired(T0 + 100, clock)


def test_a_sweep_pops_only_expired_documents_of_its_partition_earliest_first() -> None:
    index = ExpiryIndex()
    index.put(0, ALICE, T0 + 30)
    index.put(0, BOB, T0 + 10)
    index.put(0, CAROL, T0 + 90)
    index.put(1, ("acme", "dave"), T0)
    assert [BOB, ALICE] == index.due(0, T0 + 30, limit=10)
    assert [] == index.due(0, T0 + 30, limit=10)
    assert 2 == index.count([0, 1])


def test_a_sweep_takes_at_most_its_limit_and_leaves_the_rest_for_later() -> None:
    index = ExpiryIndex()
    for i in range(10):
        index.put(0, ("acme", f"u{i}"), T0 + i)
    assert [("acme", "u0"), ("acme", "u1"), ("acme", "u2")] == index.due(0, T0 + 100, 3)
    assert 7 == index.count([0])


def test_a_document_written_again_expires_at_its_new_time_only() -> None:
    index = ExpiryIndex()
    index.put(0, ALICE, T0 + 10)
    index.put(0, ALICE, T0 + 500)
    assert [] == index.due(0, T0 + 100, 10)
    index.discard(0, ALICE)
    assert ([], 0) == (index.due(0, T0 + 1000, 10), index.count([0]))


def test_rewrites_do_not_grow_the_index_without_bound() -> None:
    index = ExpiryIndex()
    for i in range(10_000):
        index.put(0, ALICE, T0 + i)
    assert index.entries(0) <= 2 * 1 + 64 + 1
    assert [ALICE] == index.due(0, T0 + 20_000, 10)


def test_the_earliest_expiring_over_several_partitions_within_their_limits() -> None:
    index = ExpiryIndex()
    index.put(0, ALICE, T0 + 1)
    index.put(0, BOB, T0 + 2)
    index.put(1, CAROL, T0 + 3)
    index.put(1, ("acme", "dave"), T0 + 4)
    assert [(0, ALICE), (1, CAROL)] == index.earliest({0: 1, 1: 5}, 2)
    assert [(1, ("acme", "dave"))] == index.earliest({1: 5}, 3)  # partition 0 not offered
