"""A batch that fails halts the worker before the next batch is taken (faust would ack it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from sessionwarden.detect.app import HALT_EXIT_STATUS, judge_batches


class Halted(Exception):
    pass


def test_a_failed_batch_halts_and_no_later_batch_is_judged() -> None:
    taken: list[list[int]] = []
    judged: list[Sequence[Any]] = []
    halted: list[BaseException] = []

    async def batches() -> AsyncIterator[list[int]]:
        for batch in ([1, 2], [3], [4, 5]):
            taken.append(batch)
            yield batch

    async def handle(events: Sequence[Any]) -> None:
        if 3 in events:
            raise RuntimeError("the changelog has no partitions")
        judged.append(events)

    def halt(exc: BaseException) -> None:
        halted.append(exc)
        raise Halted from exc

    with pytest.raises(Halted):
        asyncio.run(judge_batches(batches(), handle, halt))
    assert [[1, 2]] == judged
    assert [[1, 2], [3]] == taken  # the batch after the failed one was never taken
    assert ["the changelog has no partitions"] == [str(e) for e in halted]


def test_batches_that_succeed_are_all_judged_and_nothing_halts() -> None:
    judged: list[Sequence[Any]] = []

    async def batches() -> AsyncIterator[list[int]]:
        for batch in ([1], [2, 3]):
            yield batch

    async def handle(events: Sequence[Any]) -> None:
        judged.append(events)

    def halt(exc: BaseException) -> None:
        raise AssertionError(f"halted on {exc!r}")

    asyncio.run(judge_batches(batches(), handle, halt))
    assert [[1], [2, 3]] == judged


HALTING_CHILD = """
import asyncio, sys
from sessionwarden.detect.app import judge_batches

async def batches():
    try:
        yield [1]
    finally:
        print("acked", flush=True)  # what faust's take_events does on leaving a batch

async def handle(events):
    raise RuntimeError("no partitions")

asyncio.run(judge_batches(batches(), handle))
print("carried on", flush=True)
"""


def test_the_worker_halts_with_its_own_status_without_leaving_the_batch() -> None:
    """The default halt ends the process at once: the batch is never left, so never acked."""
    proc = subprocess.run(
        [sys.executable, "-c", HALTING_CHILD], capture_output=True, text=True, timeout=60
    )
    assert HALT_EXIT_STATUS == proc.returncode, proc.stderr
    assert "" == proc.stdout
    assert "could not be judged" in proc.stderr and "no partitions" in proc.stderr


def test_a_cancelled_batch_is_no_failure_and_does_not_halt() -> None:
    """faust cancels the agent on a rebalance and on shutdown; that must stay a cancellation."""

    async def batches() -> AsyncIterator[list[int]]:
        yield [1]

    async def handle(events: Sequence[Any]) -> None:
        raise asyncio.CancelledError

    def halt(exc: BaseException) -> None:
        raise AssertionError(f"halted on {exc!r}")

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(judge_batches(batches(), handle, halt))
