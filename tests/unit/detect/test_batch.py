"""Judging a batch of audit records: the same alerts and state as one record at a time, every
alert delivered before any state of the batch is written, each changed document written once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from sessionwarden.contracts.codec import encode
from sessionwarden.detect.app import DetectShell
from sessionwarden.detect.documents import is_user_key
from sessionwarden.detect.engine import Engine
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

    def __delitem__(self, key: Any) -> None:
        self.writes.append((key, self.current[-1] if self.current else None))
        super().__delitem__(key)


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


def run(batches: list[list[Any]]) -> tuple[CountingTable, HeldAlertTopic, list[Any]]:
    current: list[Any] = []
    users = CountingTable(current)
    topic = HeldAlertTopic()
    shell = DetectShell(Engine(policy()), users, topic)

    async def feed() -> None:
        for batch in batches:
            task = asyncio.create_task(shell.handle_batch(batch, current.append))
            await asyncio.sleep(0.01)
            topic.release()
            await task

    asyncio.run(feed())
    return users, topic, current


def docs(users: dict[Any, bytes]) -> dict[Any, bytes]:
    return {k: v for k, v in users.items() if is_user_key(k)}


def doc_writes(users: CountingTable) -> list[tuple[Any, Any]]:
    return [(k, e) for k, e in users.writes if is_user_key(k)]


def test_a_batch_yields_the_alerts_and_state_of_its_records_judged_one_by_one() -> None:
    events = [event(r, i) for i, r in enumerate(records())]
    one_by_one, alerts_single, _ = run([[e] for e in events])
    batched, alerts_batched, _ = run([events])
    assert [b"carol", b"alice"] == alerts_single.sent
    assert alerts_single.sent == alerts_batched.sent
    assert docs(one_by_one) == docs(batched)
    assert {("acme", "alice"), ("acme", "bob"), ("acme", "carol")} == set(docs(batched))


def test_each_changed_document_is_written_once_per_batch() -> None:
    events = [event(r, i) for i, r in enumerate(records())]
    one_by_one, _, _ = run([[e] for e in events])
    batched, _, _ = run([events])
    written = [k for k, _ in doc_writes(batched)]
    assert sorted(set(written)) == sorted(written)
    assert len(written) < len(doc_writes(one_by_one))


def test_no_state_of_a_batch_is_written_before_all_its_alerts_were_delivered() -> None:
    """Otherwise a crash in between could lose an alert for good."""
    events = [event(r, i) for i, r in enumerate(records())]
    current: list[Any] = []
    users = CountingTable(current)
    topic = HeldAlertTopic()
    shell = DetectShell(Engine(policy()), users, topic)

    async def feed() -> tuple[int, int]:
        task = asyncio.create_task(shell.handle_batch(events, current.append))
        await asyncio.sleep(0.05)
        before = len(users)
        topic.release()
        await task
        return before, len(users)

    before, after = asyncio.run(feed())
    assert 2 == len(topic.pending)
    assert (0, True) == (before, after > 0)


def test_a_document_is_written_while_the_event_that_changed_it_last_is_current() -> None:
    """faust takes the changelog partition of a write from the current event: a user's
    document and its partition's marker must land on the partition of its records."""
    events = [event(r, i, partition=len(r.user_id) % 3) for i, r in enumerate(records())]
    batched, _, _ = run([events])
    last_changer = {
        ("acme", "alice"): events[6],  # a3's expiration
        ("acme", "bob"): events[7],  # b1's logout
        ("acme", "carol"): events[5],  # the alert's cooldown
    }
    assert last_changer == dict(doc_writes(batched))
    markers = {k: e for k, e in batched.writes if not is_user_key(k)}
    assert {(e.message.partition,) for e in markers.values()} == set(markers)
    assert all(m.message.partition == k[0] for k, m in markers.items())


def test_a_user_created_and_emptied_within_a_batch_is_not_written() -> None:
    """The table never held it: nothing to delete, no changelog record to send."""
    lifecycle = [started("c1", "carl", T0), ended("c1", "carl", T0 + 5, reason="logout")]
    batched, _, _ = run([[event(r, i) for i, r in enumerate(lifecycle)]])
    assert [] == doc_writes(batched)
    one_by_one, _, _ = run([[event(r, i)] for i, r in enumerate(lifecycle)])
    user = ("acme", "carl")
    assert [user, user] == [k for k, _ in doc_writes(one_by_one)]
    assert user not in one_by_one, "a held document left empty is deleted"
