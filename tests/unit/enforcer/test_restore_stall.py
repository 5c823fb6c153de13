"""A changelog consumer that stops reading below the ends (as after a hung broker thawed)
would keep its partitions restoring, paused and unenforced, for good: the restore reopens it
where it stood, and every changelog record is restored once."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sessionwarden.enforcer.restore import Restorer
from tests.unit.stall_fakes import Clock, EndsAdmin, Wedging

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


def changelog(log: dict[int, list[str]], wedge_after: int = 10**6) -> Wedging:
    records = {p: [record(p, key) for key in keys] for p, keys in log.items()}
    return Wedging(TOPIC, records, wedge_after)


def record(partition: int, key: str) -> Any:
    return SimpleNamespace(
        error=lambda: None,
        partition=lambda: partition,
        key=lambda: key.encode(),
        value=lambda: b"v",
    )


def restore_with(
    first: Wedging, log: dict[int, list[str]], stalled: Callable[[], object] | None = None
) -> tuple[Restorer, list[Wedging], Clock]:
    made: list[Wedging] = []

    def reopen() -> Any:
        made.append(changelog(log))
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
        stalled=stalled,
    )
    return restorer, made, clock


def test_a_changelog_consumer_that_stopped_is_reopened_where_it_stood() -> None:
    log = {0: [f"k{i}" for i in range(30)], 1: [f"j{i}" for i in range(5)]}
    first = changelog(log, wedge_after=8)
    told: list[str] = []
    restorer, made, clock = restore_with(first, log, lambda: told.append("stalled"))
    for p in log:
        restorer.add(p)
    states = {p: restorer.pending[p].enforcer.state for p in log}
    done: list[Any] = []
    while not done and clock.t < 60:
        clock.t += 0.5
        done = restorer.step(0.001)
    assert first.closed and 1 == len(made) == restorer.reopened
    assert ["stalled"] == told, "the reopen reaches the metrics, not only the log"
    assert {0, 1} == {n for n, _ in done}
    assert log == {p: s.restored for p, s in states.items()}, "each record restored once"


def test_a_restore_that_moves_is_never_reopened() -> None:
    log = {0: [f"k{i}" for i in range(30)]}
    restorer, made, clock = restore_with(changelog(log), log)
    restorer.add(0)
    done: list[Any] = []
    while not done:
        clock.t += 0.5
        done = restorer.step(0.001)
    assert ([], 0) == (made, restorer.reopened)
