"""A user's state as one stamped document: its bytes, what it keeps, and the order of the
writes that make a record's changes reach the changelog together or not at all."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from sessionwarden.contracts.codec import encode_dict
from sessionwarden.detect.alerts import CooldownRecord
from sessionwarden.detect.detectors import MAX_LIVE_SESSIONS, Expiry, Grant
from sessionwarden.detect.documents import MAX_MARKS, UserDoc, UserStore, marker_key
from sessionwarden.detect.expiry import Retention
from sessionwarden.detect.tables import (
    EXPIRATIONS,
    GRANTS,
    DetectState,
    apply_writes,
    bucket_range,
)
from tests.unit.detect.factories import T0

ALICE = ("acme", "alice")
WINDOWS = {EXPIRATIONS: 60.0, GRANTS: 120.0}
RETENTION = Retention(WINDOWS, 300.0)


def event(partition: int, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset))


def doc_with(writes: Any) -> UserDoc:
    doc = UserDoc(ALICE)
    apply_writes(doc.tables, writes)
    return doc


def test_a_document_has_a_fixed_byte_layout() -> None:
    """Changelog values outlive a release: a new worker must read what the old one wrote."""
    doc = UserDoc(ALICE, applied=(2, 41))
    state = DetectState(doc.tables, 60, 120)
    apply_writes(
        doc.tables,
        [
            state.put_sessions(ALICE, {"s1": (T0, T0 + 100)}),
            state.put_cooldown(ALICE, "concurrent_sessions", CooldownRecord(T0, "medium", 1)),
            state.expirations.append(doc.tables, ALICE, Expiry(T0 + 1.5, "e1", "s1", "idle")),
        ],
    )
    assert (
        b'{"applied":[2,41],"sessions":{"s1":[1800000000.0,1800000100.0]},'
        b'"cooldowns":{"concurrent_sessions":{"last_at":1800000000.0,"severity":"medium",'
        b'"suppressed":1,"recent":[]}},"expirations":[[1800000000.0,1800000059.9,{"marks":'
        b'[{"at":1800000001.5,"event_id":"e1","session_id":"s1","reason":"idle"}]}]]}'
    ) == doc.encode()
    assert doc == UserDoc.decode(ALICE, doc.encode())
    assert b'{"applied":null}' == UserDoc(ALICE).encode()


def test_a_document_holds_records_up_to_its_stamp_on_its_partition_only() -> None:
    doc = UserDoc(ALICE, applied=(1, 10))
    assert (True, True, False, False) == (
        doc.holds((1, 9)),
        doc.holds((1, 10)),
        doc.holds((1, 11)),
        doc.holds((0, 5)),
    )
    assert not UserDoc(ALICE).holds((0, 0))


def test_old_buckets_and_marks_past_the_cap_are_dropped_earliest_first() -> None:
    """Reads at event time t look back one window; older buckets only grow the document."""
    doc = UserDoc(ALICE)
    state = DetectState(doc.tables, 60, 120)
    for i in range(5):  # one expiration in each of five 60 s buckets
        mark = Expiry(T0 + 60 * i, f"e{i}", f"s{i}", "idle_timeout")
        apply_writes(doc.tables, [state.expirations.append(doc.tables, ALICE, mark)])
    doc.prune(T0 + 240, WINDOWS)
    kept = sorted(rng[0] for _, rng in doc.tables[EXPIRATIONS])
    assert [T0 + 120, T0 + 180, T0 + 240] == kept
    assert [m.event_id for m in state.expirations.recent(doc.tables, ALICE, T0 + 240)] == [
        "e3",
        "e4",
    ]
    for i in range(MAX_MARKS):
        mark = Expiry(T0 + 241 + i * 0.01, f"f{i}", "s", "idle_timeout")
        apply_writes(doc.tables, [state.expirations.append(doc.tables, ALICE, mark)])
    doc.prune(T0 + 250, WINDOWS)
    marks = [m for raw in doc.tables[EXPIRATIONS].values() for m in orjson.loads(raw)["marks"]]
    assert MAX_MARKS == len(marks)
    assert {f"f{i}" for i in range(MAX_MARKS)} == {m["event_id"] for m in marks}


def test_a_document_of_the_largest_marks_and_sessions_fits_a_kafka_record() -> None:
    """A changelog record over 1 MB fails the batch and halts the worker on every restart."""
    doc = UserDoc(ALICE, applied=(0, 1))
    state = DetectState(doc.tables, 60, 120)
    roles = tuple(f"{i:02}" + "r" * 126 for i in range(64))
    grants = [Grant(T0 + i * 0.1, f"{i:036}", 1, 10, 30, roles, roles, True) for i in range(512)]
    expiries = [Expiry(T0 + i * 0.1, f"{i:036}", "s" * 256, "idle_timeout") for i in range(512)]
    for name, size, marks in ((GRANTS, 120, grants), (EXPIRATIONS, 60, expiries)):
        doc.tables[name][(ALICE, bucket_range(size)(T0))] = encode_dict({"marks": marks})
    live = {f"{i:04}" + "s" * 252: (T0, T0 + 1000) for i in range(MAX_LIVE_SESSIONS)}
    apply_writes(doc.tables, [state.put_sessions(ALICE, live)])
    doc.prune(T0 + 60, WINDOWS)
    assert len(doc.encode()) < 1_000_000
    kept = state.grants.recent(doc.tables, ALICE, T0 + 60)
    assert kept and f"{511:036}" == kept[-1].event_id, "the latest grants stay"
    assert len(kept) < MAX_MARKS


def test_a_marker_or_a_stamp_tells_a_record_read_again() -> None:
    table: dict[Any, bytes] = {
        marker_key(0): b'{"offset":7}',
        ALICE: UserDoc(ALICE, applied=(0, 9)).encode(),
    }
    store = UserStore(table, RETENTION)
    bob = ("acme", "bob")
    assert (None, None, None, None) == (
        store.to_judge(bob, (0, 7), T0 + 7),
        store.to_judge(ALICE, (0, 9), T0 + 9),
        store.to_judge(bob, (0, 3), T0 + 3),
        store.to_judge(ALICE, (0, 5), T0 + 5),
    )
    assert UserDoc(ALICE, applied=(0, 9)) == store.to_judge(ALICE, (0, 10), T0 + 10)
    assert UserDoc(bob) == store.to_judge(bob, (1, 3), T0 + 3)


class Log(dict[Any, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[Any, bytes | None]] = []

    def __setitem__(self, key: Any, value: bytes) -> None:
        self.sent.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.sent.append((key, None))
        super().__delitem__(key)


def judge_into(store: UserStore, at: tuple[int, int], live: dict[str, Any]) -> None:
    doc = store.to_judge(ALICE, at, T0 + at[1])
    assert doc is not None
    write = DetectState(doc.tables, 60, 120).put_sessions(ALICE, live)
    store.seen(at, event(*at))
    store.touched(doc, at, T0 + at[1], [write], event(*at))


def test_a_document_left_empty_is_named_in_the_marker_and_deleted_after_it() -> None:
    """A delete read without that marker would make the batch's records, read again, see no
    state instead of the state before them; the marker read without the delete still says
    the document is empty."""
    table = Log()
    store = UserStore(table, RETENTION)
    judge_into(store, (0, 3), {"s1": (T0, T0 + 100)})
    store.flush()
    before = dict(table)
    table.sent.clear()
    judge_into(store, (0, 4), {})
    store.seen((0, 5), event(0, 5))
    assert 2 == store.flush().written
    assert [
        (marker_key(0), b'{"offset":5,"emptied":[["acme","alice"]],"clock":1800000004.0}'),
        (ALICE, None),
    ] == table.sent
    assert {marker_key(0)} == set(table)
    # killed between the marker and the delete: the old document is still in the table
    restored = {**before, marker_key(0): table[marker_key(0)]}
    assert UserDoc(ALICE) == UserStore(restored, RETENTION).to_judge(ALICE, (0, 6), T0 + 6)
    # the next batch of the partition names her again and deletes her document
    after_kill = Log()
    after_kill.update(restored)
    store = UserStore(after_kill, RETENTION)
    bob = store.to_judge(("acme", "bob"), (0, 6), T0 + 6)
    assert bob is not None
    write = DetectState(bob.tables, 60, 120).put_sessions(("acme", "bob"), {"b": (T0, T0 + 9)})
    store.touched(bob, (0, 6), T0 + 6, [write], event(0, 6))
    store.seen((0, 6), event(0, 6))
    store.flush()
    assert [
        ("acme", "bob"),
        marker_key(0),
        ALICE,
    ] == [k for k, _ in after_kill.sent]
    marker = b'{"offset":6,"emptied":[["acme","alice"]],"clock":1800000006.0}'
    assert marker == after_kill[marker_key(0)]
    assert ALICE not in after_kill
    # a newer document than the marker is the user's state again
    newer = UserDoc(ALICE, applied=(0, 6))
    restored[ALICE] = newer.encode()
    assert newer == UserStore(restored, RETENTION).to_judge(ALICE, (0, 7), T0 + 7)


def test_a_batch_that_changed_nothing_writes_only_the_clock_it_moved() -> None:
    """The partition's clock decides what expired; a restart must find it where it was."""
    table = Log()
    store = UserStore(table, RETENTION)
    doc = store.to_judge(ALICE, (1, 3), T0)
    assert doc is not None
    store.touched(doc, (1, 3), T0, [], event(1, 3))
    store.seen((1, 3), event(1, 3))
    assert 1 == store.flush().written
    assert [(marker_key(1), b'{"offset":3,"clock":1800000000.0}')] == table.sent
    table.sent.clear()
    doc = store.to_judge(ALICE, (1, 4), T0 - 5)  # earlier: the clock stays
    assert doc is not None
    store.touched(doc, (1, 4), T0 - 5, [], event(1, 4))
    store.seen((1, 4), event(1, 4))
    assert (0, []) == (store.flush().written, table.sent)
