"""The detectors' table layout: exact stored bytes and event-time buckets."""

from __future__ import annotations

from faust.windows import TumblingWindow

from sessionwarden.detect.alerts import CooldownRecord
from sessionwarden.detect.detectors import Expiry, Grant
from sessionwarden.detect.tables import (
    COOLDOWNS,
    EXPIRATIONS,
    TABLES,
    DetectState,
    Tables,
    apply_writes,
    bucket_range,
)
from tests.unit.detect.factories import T0

BOB = ("acme", "bob")
ALICE = ("acme", "alice")


def fresh() -> tuple[Tables, DetectState]:
    tables: Tables = {name: {} for name in TABLES}
    return tables, DetectState(tables, expiry_window=60, grant_window=120)


def test_stored_marks_have_a_fixed_byte_layout() -> None:
    """Changelog values outlive a release: a new worker must read what the old one wrote."""
    tables, state = fresh()
    write = state.expirations.append(tables, ALICE, Expiry(T0 + 1.5, "e1", "s1", "idle_timeout"))
    assert (("acme", "alice"), (1800000000.0, 1800000059.9)) == write.key
    assert (
        b'{"marks":[{"at":1800000001.5,"event_id":"e1","session_id":"s1","reason":"idle_timeout"}]}'
        == write.value
    )
    grant = Grant(T0, "g1", 2, 10, 40, ("support",), (), False, True)
    assert (
        b'{"marks":[{"at":1800000000.0,"event_id":"g1","rise":2,"privilege_before":10,'
        b'"privilege_after":40,"roles":["support"],"sensitive":[],"self_grant":false,'
        b'"flagged":true}]}'
    ) == state.grants.append(tables, BOB, grant).value


def test_marks_and_records_read_back_as_written() -> None:
    """What the app writes into a table it must decode identically after a restore."""
    tables, state = fresh()
    grant = Grant(T0, "g1", 2, 10, 40, ("support",), ("support",), True, True)
    cooldown = CooldownRecord(T0, "high", 3, ("e1", "e2"))
    apply_writes(
        tables,
        [
            state.grants.append(tables, BOB, grant),
            state.put_sessions(BOB, {"s1": (T0, T0 + 100)}),
            state.put_cooldown(BOB, "privilege_escalation", cooldown),
        ],
    )
    assert [grant] == state.grants.recent(tables, BOB, T0 + 119)
    assert {"s1": (T0, T0 + 100)} == state.sessions(BOB)
    assert cooldown == state.cooldown(BOB, "privilege_escalation")
    assert (
        b'{"last_at":1800000000.0,"severity":"high","suppressed":3,"recent":["e1","e2"]}'
        == (tables[COOLDOWNS][("acme", "bob", "privilege_escalation")])
    )


def test_a_lookup_sees_the_current_and_the_previous_bucket_only() -> None:
    """Reading at t covers at least [t - size, t] and never more than two buckets back."""
    tables, state = fresh()
    marks = [Expiry(T0 + dt, f"e{dt}", "s", "idle_timeout") for dt in (-70, -50, 0)]
    apply_writes(tables, [state.expirations.append(tables, ALICE, m) for m in marks[:1]])
    apply_writes(tables, [state.expirations.append(tables, ALICE, m) for m in marks[1:2]])
    apply_writes(tables, [state.expirations.append(tables, ALICE, m) for m in marks[2:]])
    seen = {m.event_id for m in state.expirations.recent(tables, ALICE, T0 + 10)}
    assert {"e-50", "e0"} <= seen
    assert "e-70" not in seen
    assert 3 == len(tables[EXPIRATIONS])


def test_bucket_ranges_are_faust_tumbling_window_ranges() -> None:
    """faust expires a windowed table's keys by the range end it finds in them."""
    for size in (3.0, 60.0, 3600.0):
        window = TumblingWindow(size)
        for t in (T0, T0 + 0.5, T0 + size - 0.01, T0 + size):
            assert window.current(t) == bucket_range(size)(t)
