"""The sink's pure decisions: rows, offsets and pruning from plain records and a fake clock."""

from __future__ import annotations

from datetime import timedelta

from sessionwarden.contracts.codec import encode
from sessionwarden.sink.postgres.plan import (
    CutOffSchedule,
    PruneSchedule,
    RawRecord,
    plan_batch,
    session_tag,
)
from tests.unit.sdk.fakes import at, revalidation, revocation

KEEP = timedelta(seconds=100)


def raw(partition: int, offset: int, model: object) -> RawRecord:
    return RawRecord(partition, offset, encode(model))  # type: ignore[arg-type]


def test_one_row_per_tenant_and_session_latest_record_wins_and_counts() -> None:
    """A session revoked twice is one row with both records counted; tenants never merge."""
    batch = plan_batch(
        [
            raw(0, 5, revocation("s1", 0, "idle_timeout")),
            raw(1, 7, revocation("s1", 1, "logout", tenant="other")),
            raw(0, 6, revocation("s1", 2, "logout")),
        ],
        now=at(3),
        keep_for=KEEP,
    )
    rows = {(r.tenant, r.session_id): r for r in batch.rows}
    assert {("acme", "s1"), ("other", "s1")} == set(rows)
    acme = rows[("acme", "s1")]
    assert ("logout", 2, 0, 6) == (
        acme.reason,
        acme.records,
        acme.source_partition,
        acme.source_offset,
    )
    assert at(2) + KEEP == acme.keep_until
    assert 1 == rows[("other", "s1")].records
    assert {0: 7, 1: 8} == batch.next_offsets


def test_a_revocation_on_an_identity_signal_becomes_a_row() -> None:
    """Reason ``signal`` is stored like any other: the guard refuses the session for it."""
    batch = plan_batch([raw(0, 3, revocation("s1", 0, "signal"))], now=at(1), keep_for=KEEP)
    assert [("s1", "signal")] == [(r.session_id, r.reason) for r in batch.rows]


def test_a_later_record_never_shortens_the_lifetime() -> None:
    """Fail closed: the row lives until the latest keep_until any of its records asked for."""
    batch = plan_batch(
        [raw(0, 0, revocation("s", 50)), raw(0, 1, revocation("s", 10))], at(60), KEEP
    )
    assert [at(50) + KEEP] == [r.keep_until for r in batch.rows]


def test_expired_revalidation_and_garbage_advance_offsets_but_write_no_row() -> None:
    """Records that revoke nothing still move the offset on, or the sink would read them forever."""
    batch = plan_batch(
        [
            raw(0, 0, revocation("old", 0)),
            RawRecord(0, 1, b"{not json"),
            raw(2, 4, revalidation("s")),
            RawRecord(2, 5, None),
        ],
        now=at(100),
        keep_for=KEEP,
    )
    assert [] == batch.rows
    assert (1, 1) == (batch.expired, batch.ignored)
    assert [(0, 1), (2, 5)] == [(p, o) for p, o, _ in batch.undecodable]
    assert {0: 2, 2: 6} == batch.next_offsets


def test_a_session_postgres_cannot_hold_is_skipped_not_fatal() -> None:
    """A NUL character cannot be stored (nor bound to a transaction): skip it, keep going."""
    batch = plan_batch(
        [raw(0, 0, revocation("bad\x00id", 0)), raw(0, 1, revocation("ok", 0))], at(1), KEEP
    )
    assert (["ok"], 1, {0: 2}) == (
        [r.session_id for r in batch.rows],
        batch.ignored,
        batch.next_offsets,
    )


def test_the_key_is_never_read() -> None:
    """Identity comes from the record's value: the key's format may change."""
    batch = plan_batch([raw(0, 0, revocation("s", 0, tenant="t2"))], at(1), KEEP)
    assert [("t2", "s")] == [(r.tenant, r.session_id) for r in batch.rows]


def test_session_tag_fits_application_name_and_hides_the_session() -> None:
    tag = session_tag("acme", "secret-session")
    assert 32 == len(tag) and "secret" not in tag
    assert tag != session_tag("acme2", "secret-session")
    assert session_tag("a", "b\x1fc") != session_tag("a\x1fb", "c")


def test_prune_schedule_runs_first_at_once_then_every_interval() -> None:
    schedule = PruneSchedule(60)
    assert schedule.due(0.0)
    schedule.done(0.0)
    assert not schedule.due(59.9)
    assert schedule.due(60.0)


def test_second_pass_of_the_cut_off_is_due_once_after_the_grace() -> None:
    """Each batch's sessions are looked at again once, no earlier than the grace."""
    schedule = CutOffSchedule(0.5)
    schedule.add(["a", "b"], now=10.0)
    schedule.add([], now=10.1)
    schedule.add(["b", "c"], now=10.2)
    assert [] == schedule.due(10.49)
    assert ["a", "b"] == schedule.due(10.5)
    assert [] == schedule.due(10.6)
    assert ["b", "c"] == schedule.due(11.0)
    assert 0 == len(schedule)


def test_overdue_second_passes_are_merged() -> None:
    """A sink that fell behind looks at every overdue session once, in one query."""
    schedule = CutOffSchedule(0.5)
    schedule.add(["a", "b"], now=1.0)
    schedule.add(["b", "c"], now=2.0)
    assert ["a", "b", "c"] == schedule.due(9.0)
