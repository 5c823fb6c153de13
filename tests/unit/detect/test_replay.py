"""A worker killed at any point and restarted raises the alerts of a run that was never killed.

The fake changelog keeps every state write in the order it was sent, one log per changelog
partition (Kafka orders a producer's records only within a partition). A kill keeps a prefix of
each log, at least what was written before the last commit of input offsets (faust flushes the
producer before it commits); the restarted worker restores its state from those prefixes and
reads every partition again from its committed offset."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from sessionwarden.contracts.codec import encode
from sessionwarden.detect.app import DetectShell
from sessionwarden.detect.engine import Engine
from tests.unit.detect.factories import lifecycle, policy

PARTITIONS = 2


class Changelog:
    """Every write sent, per changelog partition, in order."""

    def __init__(self) -> None:
        self.logs: dict[int, list[tuple[Any, bytes | None]]] = {}

    def restore(self) -> dict[Any, bytes]:
        table: dict[Any, bytes] = {}
        for log in self.logs.values():
            for key, value in log:
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
        return table

    def lengths(self) -> dict[int, int]:
        return {partition: len(log) for partition, log in self.logs.items()}

    def cut(self, keep: dict[int, int]) -> None:
        for partition, log in self.logs.items():
            del log[keep.get(partition, 0) :]


class LoggedTable(dict[Any, bytes]):
    """The state table: each write goes to the changelog partition of the current event."""

    def __init__(self, changelog: Changelog, data: dict[Any, bytes]) -> None:
        super().__init__(data)
        self.changelog = changelog
        self.partition = 0

    def current(self, event: Any) -> None:
        self.partition = event.message.partition

    def _send(self, key: Any, value: bytes | None) -> None:
        self.changelog.logs.setdefault(self.partition, []).append((key, value))

    def __setitem__(self, key: Any, value: bytes) -> None:
        self._send(key, value)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._send(key, None)
        super().__delitem__(key)


class Delivered:
    """The alert topic: every alert is delivered at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append(orjson.loads(value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Worker:
    """One life of the detect worker: its state restored from the changelog."""

    def __init__(self, changelog: Changelog) -> None:
        self.table = LoggedTable(changelog, changelog.restore())
        self.topic = Delivered()
        self.shell = DetectShell(Engine(policy()), self.table, self.topic)

    def judge(
        self, batches: list[list[Any]], after: Callable[[list[Any]], None] = lambda _: None
    ) -> None:
        async def feed() -> None:
            for batch in batches:
                await self.shell.handle_batch(batch, self.table.current)
                after(batch)

        asyncio.run(feed())


def event(record: Any, partition: int, offset: int) -> Any:
    return SimpleNamespace(
        value=encode(record),
        message=SimpleNamespace(topic="t.audit", partition=partition, offset=offset),
    )


def audit_stream(seed: int) -> list[Any]:
    """The seed's lifecycle records as audit events, users spread over the partitions."""
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    events = []
    for record in lifecycle(seed, users=6, length=160):
        partition = int(record.user_id.removeprefix("u")) % PARTITIONS
        events.append(event(record, partition, offsets[partition]))
        offsets[partition] += 1
    return events


def batches_of(events: list[Any], rng: random.Random) -> list[list[Any]]:
    out = []
    i = 0
    while i < len(events):
        n = rng.choice((1, 2, 3, 7, 20))
        out.append(events[i : i + n])
        i += n
    return out


def comparable(alert: dict[str, Any]) -> tuple[str, bytes]:
    """An alert as subscribers see it; emitted_at is the wall clock of the judging process."""
    return alert["alert_id"], orjson.dumps({k: v for k, v in alert.items() if k != "emitted_at"})


def undisturbed(events: list[Any]) -> dict[str, bytes]:
    worker = Worker(Changelog())
    worker.judge(batches_of(events, random.Random(0)))
    alerts = dict(comparable(a) for a in worker.topic.sent)
    assert len(alerts) == len(worker.topic.sent), "one alert per trigger when nothing fails"
    return alerts


def with_kills(
    events: list[Any], rng: random.Random, kills: int
) -> tuple[list[dict[str, Any]], int]:
    """Run over ``events``, killed ``kills`` times at random points, each time restarted from
    the committed offsets on the state restored from what reached the changelog; returns the
    alerts sent and how many records were found judged already."""
    changelog = Changelog()
    committed = dict.fromkeys(range(PARTITIONS), 0)
    at_commit: dict[int, int] = {}
    sent: list[dict[str, Any]] = []
    replayed = 0

    def commit_now_and_then(batch: list[Any]) -> None:
        if rng.random() < 0.2:  # faust flushed the producer, then committed
            for e in batch:
                p = e.message.partition
                committed[p] = max(committed[p], e.message.offset + 1)
            at_commit.update(changelog.lengths())

    for run in range(kills + 1):
        worker = Worker(changelog)
        todo = [e for e in events if e.message.offset >= committed[e.message.partition]]
        batches = batches_of(todo, rng)
        last = rng.randrange(len(batches)) if run < kills else len(batches) - 1
        worker.judge(batches[: last + 1], commit_now_and_then)
        sent.extend(worker.topic.sent)
        replayed += worker.shell.replayed
        if run < kills:  # SIGKILL: each partition keeps what it got since the last commit, or more
            changelog.cut(
                {p: rng.randint(at_commit.get(p, 0), n) for p, n in changelog.lengths().items()}
            )
    return sent, replayed


@pytest.mark.parametrize("seed", range(12))
def test_a_killed_and_restarted_worker_alerts_as_one_never_killed(seed: int) -> None:
    """Records after the last commit are judged again after a kill: against the state as of
    before them, never against state that already holds them or records after them (a missed
    alert, another severity or count, or an alert no undisturbed run raises)."""
    events = audit_stream(seed)
    expected = undisturbed(events)
    assert len(expected) >= 5, "the stream makes the detectors fire"
    rng = random.Random(seed)
    replayed = 0
    for _ in range(4):
        sent, skipped = with_kills(events, rng, kills=rng.randint(1, 3))
        replayed += skipped
        got: dict[str, set[bytes]] = {}
        for alert in sent:
            alert_id, body = comparable(alert)
            got.setdefault(alert_id, set()).add(body)
        assert {k: {v} for k, v in expected.items()} == got
    assert replayed > 0, "records judged before a kill were read again"
