"""A changelog consumer that stops reading below the ends (as after a hung broker thawed)
would keep its partitions restoring, paused and unenforced, for good: the restore reopens it
where it stood, and every changelog record is restored once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from sessionwarden.enforcer.restore import Restorer
from tests.unit.stall_fakes import EndsAdmin

TOPIC = "unit.changelog"
STALL_S = 10.0


class State:
    def __init__(self) -> None:
        self.restored: list[str] = []

    def restore(self, key: str, value: bytes) -> None:
        self.restored.append(key)

    def finish_restore(self) -> None:
        pass

    def decode_restored(self, n: int) -> bool:
        return True


class Changelog:
    """Reads the assigned partitions of ``log``; returns nothing more after ``wedge_after``
    records."""

    def __init__(self, log: dict[int, list[str]], wedge_after: int = 10**6) -> None:
        self.log, self.left = log, wedge_after
        self.next: dict[int, int] = {}
        self.closed = False

    def incremental_assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.next[tp.partition] = 0 if tp.offset == OFFSET_BEGINNING else tp.offset

    def incremental_unassign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.next.pop(tp.partition, None)

    def consume(self, n: int, timeout: float) -> list[Any]:
        """Up to 4 records a partition per call."""
        out = []
        for p, at in sorted(self.next.items()):
            keys = self.log[p][at : at + min(4, self.left)]
            out += [record(p, key) for key in keys]
            self.next[p] = at + len(keys)
            self.left -= len(keys)
        return out

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, tp.partition, self.next.get(tp.partition, -1001))
                for tp in tps]  # fmt: skip

    def close(self) -> None:
        self.closed = True


def record(partition: int, key: str) -> Any:
    return SimpleNamespace(
        error=lambda: None,
        partition=lambda: partition,
        key=lambda: key.encode(),
        value=lambda: b"v",
    )


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def restore_with(
    first: Changelog, log: dict[int, list[str]]
) -> tuple[Restorer, list[Changelog], Clock]:
    made: list[Changelog] = []

    def reopen() -> Any:
        made.append(Changelog(log))
        return made[-1]

    clock = Clock()
    restorer = Restorer(
        first,  # type: ignore[arg-type]
        EndsAdmin(lambda tp: len(log[tp.partition])),  # type: ignore[arg-type]
        TOPIC,
        lambda p: SimpleNamespace(state=State()),  # type: ignore[arg-type,return-value]
        consumer_factory=reopen,
        stall_s=STALL_S,
        monotonic=clock,
    )
    return restorer, made, clock


def test_a_changelog_consumer_that_stopped_is_reopened_where_it_stood() -> None:
    log = {0: [f"k{i}" for i in range(30)], 1: [f"j{i}" for i in range(5)]}
    first = Changelog(log, wedge_after=8)
    restorer, made, clock = restore_with(first, log)
    for p in log:
        restorer.add(p)
    states = {p: restorer.pending[p].enforcer.state for p in log}
    done: list[Any] = []
    while not done and clock.t < 60:
        clock.t += 0.5
        done = restorer.step(0.001)
    assert first.closed and 1 == len(made) == restorer.reopened
    assert {0, 1} == {n for n, _ in done}
    assert log == {p: s.restored for p, s in states.items()}, "each record restored once"


def test_a_restore_that_moves_is_never_reopened() -> None:
    log = {0: [f"k{i}" for i in range(30)]}
    restorer, made, clock = restore_with(Changelog(log), log)
    restorer.add(0)
    done: list[Any] = []
    while not done:
        clock.t += 0.5
        done = restorer.step(0.001)
    assert ([], 0) == (made, restorer.reopened)
