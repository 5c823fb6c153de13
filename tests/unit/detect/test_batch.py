"""Judging a batch of audit records: the same alerts and state as one record at a time, every
alert delivered before any state of the batch is written, each changed key written once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from sessionwarden.contracts.codec import encode
from sessionwarden.detect.app import DetectShell
from sessionwarden.detect.engine import Engine
from sessionwarden.detect.pending import PendingTables
from sessionwarden.detect.tables import SESSIONS, TABLES, Tables, Write
from tests.unit.detect.factories import T0, ended, ended_used, policy, started


class CountingTable(dict[Any, bytes]):
    """A table that counts writes and remembers which event was current for each."""

    def __init__(self, current: list[Any]) -> None:
        super().__init__()
        self.current = current
        self.writes: list[tuple[Any, Any]] = []

    def __setitem__(self, key: Any, value: bytes) -> None:
        self.writes.append((key, self.current[-1] if self.current else None))
        super().__setitem__(key, value)

    def pop(self, key: Any, default: Any = None) -> Any:
        self.writes.append((key, self.current[-1] if self.current else None))
        return super().pop(key, default)


class HeldAlertTopic:
    """Deliveries stay pending until the test releases them."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.pending: list[asyncio.Future[None]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append(key)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        return fut

    def release(self) -> None:
        for fut in self.pending:
            if not fut.done():
                fut.set_result(None)


def event(record: Any, offset: int, partition: int = 0) -> Any:
    return SimpleNamespace(
        value=encode(record),
        message=SimpleNamespace(topic="t.audit", partition=partition, offset=offset),
    )


def records() -> list[Any]:
    """Three expirations of alice (one alert), bob's sessions starting and ending, and a use
    of an ended session by carol (another alert)."""
    return [
        started("a1", "alice", T0),
        ended("a1", "alice", T0 + 10),
        started("b1", "bob", T0 + 11, absolute=5000),
        ended("a2", "alice", T0 + 20),
        started("b2", "bob", T0 + 21, absolute=5000),
        ended_used("carol", "gone", T0 + 22),
        ended("a3", "alice", T0 + 30),
        ended("b1", "bob", T0 + 31, reason="logout"),
    ]


def run(batches: list[list[Any]]) -> tuple[Tables, HeldAlertTopic, list[Any]]:
    current: list[Any] = []
    tables: Tables = {name: CountingTable(current) for name in TABLES}
    topic = HeldAlertTopic()
    shell = DetectShell(Engine(policy()), tables, topic)

    async def feed() -> None:
        for batch in batches:
            task = asyncio.create_task(shell.handle_batch(batch, current.append))
            await asyncio.sleep(0.01)
            topic.release()
            await task

    asyncio.run(feed())
    return tables, topic, current


def test_a_batch_yields_the_alerts_and_state_of_its_records_judged_one_by_one() -> None:
    events = [event(r, i) for i, r in enumerate(records())]
    one_by_one, alerts_single, _ = run([[e] for e in events])
    batched, alerts_batched, _ = run([events])
    assert [b"carol", b"alice"] == alerts_single.sent
    assert alerts_single.sent == alerts_batched.sent
    assert {n: dict(t) for n, t in one_by_one.items()} == {n: dict(t) for n, t in batched.items()}
    assert 1 == len(batched[SESSIONS]), "alice's sessions ended, bob's b2 is live"


def test_each_changed_key_is_written_once_per_batch() -> None:
    events = [event(r, i) for i, r in enumerate(records())]
    one_by_one, _, _ = run([[e] for e in events])
    batched, _, _ = run([events])
    writes = {n: len(t.writes) for n, t in batched.items()}  # type: ignore[attr-defined]
    keys = {n: len({k for k, _ in t.writes}) for n, t in batched.items()}  # type: ignore[attr-defined]
    assert keys == writes
    assert sum(writes.values()) < sum(len(t.writes) for t in one_by_one.values())  # type: ignore[attr-defined]


def test_no_state_of_a_batch_is_written_before_all_its_alerts_were_delivered() -> None:
    """Otherwise a crash in between could lose an alert for good."""
    events = [event(r, i) for i, r in enumerate(records())]
    current: list[Any] = []
    tables: Tables = {name: CountingTable(current) for name in TABLES}
    topic = HeldAlertTopic()
    shell = DetectShell(Engine(policy()), tables, topic)

    async def feed() -> tuple[int, int]:
        task = asyncio.create_task(shell.handle_batch(events, current.append))
        await asyncio.sleep(0.05)
        before = sum(len(t) for t in tables.values())
        topic.release()
        await task
        return before, sum(len(t) for t in tables.values())

    before, after = asyncio.run(feed())
    assert 2 == len(topic.pending)
    assert (0, True) == (before, after > 0)


def test_a_key_is_written_while_the_event_that_wrote_it_last_is_current() -> None:
    """faust takes the changelog partition of a write from the current event."""
    events = [event(r, i, partition=i % 3) for i, r in enumerate(records())]
    one_by_one, _, _ = run([[e] for e in events])
    batched, _, _ = run([events])
    for name in TABLES:
        last_writer = dict(one_by_one[name].writes)  # type: ignore[attr-defined]
        written = dict(batched[name].writes)  # type: ignore[attr-defined]
        assert {k: last_writer[k] for k in written} == written
        assert None not in written.values()
    # alice's sessions all started and ended within the batch: nothing of hers to write
    assert {("acme", "bob")} == set(dict(batched[SESSIONS].writes))  # type: ignore[attr-defined]


def test_a_key_created_and_deleted_within_a_batch_is_not_written() -> None:
    """The table never held it: nothing to delete, no changelog record to send."""
    lifecycle = [started("c1", "carl", T0), ended("c1", "carl", T0 + 5, reason="logout")]
    batched, _, _ = run([[event(r, i) for i, r in enumerate(lifecycle)]])
    assert [] == batched[SESSIONS].writes  # type: ignore[attr-defined]
    one_by_one, _, _ = run([[event(r, i)] for i, r in enumerate(lifecycle)])
    user = ("acme", "carl")
    assert [user, user] == [k for k, _ in one_by_one[SESSIONS].writes]  # type: ignore[attr-defined]
    assert user not in one_by_one[SESSIONS], "a delete of a held key is still written"


def test_pending_tables_read_through_their_writes_and_flush_once() -> None:
    base: dict[Any, bytes] = {"kept": b"1", "dropped": b"2", "changed": b"3"}
    pending = PendingTables({SESSIONS: base})
    view = pending[SESSIONS]
    pending.apply(
        [
            Write(SESSIONS, "dropped", None),
            Write(SESSIONS, "changed", b"4"),
            Write(SESSIONS, "new", b"5"),
            Write(SESSIONS, "changed", b"6"),
        ],
        "e1",
    )
    assert (b"1", None, b"6", b"5") == tuple(
        view.get(k) for k in ("kept", "dropped", "changed", "new")
    )
    assert {"kept", "changed", "new"} == set(view) and 3 == len(view)
    assert {"kept": b"1", "dropped": b"2", "changed": b"3"} == base, "nothing written yet"
    seen: list[Any] = []
    assert 3 == pending.flush(seen.append)
    assert {"kept": b"1", "changed": b"6", "new": b"5"} == base
    assert ["e1"] == seen
    assert 0 == pending.flush(seen.append)
