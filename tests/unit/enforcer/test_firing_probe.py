"""The enforcer's last-stable-offset probe under a hung or recovering broker: an unanswered or
invalid answer proves nothing (a deadline may wait, never fire early), failed probes back off
instead of being asked on every turn of the loop, and a client that keeps failing is rebuilt."""

from __future__ import annotations

import concurrent.futures
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sessionwarden.config.settings import TopicNames
from sessionwarden.enforcer.engine.horizon import NEVER, PartitionClock
from sessionwarden.enforcer.firing import Firing
from sessionwarden.enforcer.runtime import PartitionRuntime

INVALID = -1001


class Admin:
    """Answers every partition with ``answer``: an offset or an error code."""

    def __init__(self, answer: int | KafkaError) -> None:
        self.answer = answer
        self.asked = 0

    def list_offsets(self, specs: dict[TopicPartition, Any], **_: Any) -> dict[Any, Any]:
        self.asked += 1
        out: dict[Any, concurrent.futures.Future[Any]] = {}
        for tp in specs:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            if isinstance(self.answer, KafkaError):
                future.set_exception(KafkaException(self.answer))
            else:
                future.set_result(SimpleNamespace(offset=self.answer))
            out[tp] = future
        return out

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _part(read_to: int) -> PartitionRuntime:
    return PartitionRuntime(enforcer=None, clock=PartitionClock(2.0), position=read_to)  # type: ignore[arg-type]


def _firing(admin: Admin, clock: Clock, **options: Any) -> Firing:
    return Firing(None, admin, TopicNames("unit."), 2.0, 100, clock, monotonic=clock, **options)  # type: ignore[arg-type]


def test_an_invalid_end_offset_never_proves_a_partition_read_through() -> None:
    """Taken as an end, OFFSET_INVALID proves the probe's time at once: deadlines before it
    fire although the records that extend those sessions may not be read yet (early)."""
    clock = Clock(1000.0)
    parts = {0: _part(read_to=4)}
    _firing(Admin(INVALID), clock).probe(parts, [0])
    assert (NEVER, None) == (parts[0].clock.read_through(), parts[0].clock.probe)


def test_a_valid_answer_still_proves_it() -> None:
    clock = Clock(1000.0)
    parts = {0: _part(read_to=4)}
    _firing(Admin(4), clock).probe(parts, [0])
    assert 1000.0 == parts[0].clock.read_through()


def test_failed_probes_back_off_and_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """A broker answering FENCED_LEADER_EPOCH at once was asked ~170 times a second, each try
    logged; retries now wait, doubling, and one line says they fail, one that they answer."""
    clock = Clock(1000.0)
    admin = Admin(KafkaError(KafkaError.FENCED_LEADER_EPOCH))
    firing = _firing(admin, clock)
    parts = {0: _part(read_to=4)}
    with caplog.at_level(logging.INFO, logger="sessionwarden.enforcer.firing"):
        for _ in range(int(30 / 0.006)):  # 30 s of a loop turning every 6 ms
            firing.probe(parts, [0])
            clock.now += 0.006
        admin.answer = 4
        clock.now += 5.0
        firing.probe(parts, [0])
    assert admin.asked <= 30 / 2.0 + 5, f"{admin.asked} probes in 30 s"
    assert (1, 1) == (
        sum("probes failing" in r.getMessage() for r in caplog.records),
        sum("probes answer again" in r.getMessage() for r in caplog.records),
    )
    assert 1005.0 <= parts[0].clock.read_through()


def test_a_probe_failing_past_the_bound_rebuilds_the_admin_client() -> None:
    """Stale client metadata after a thaw (FENCED_LEADER_EPOCH on every try) must not leave
    overdue deadlines unfired: the probe's admin client is built anew."""
    clock = Clock(1000.0)
    fenced = Admin(KafkaError(KafkaError.FENCED_LEADER_EPOCH))
    fresh = Admin(4)
    firing = _firing(fenced, clock, admin_factory=lambda: fresh)
    parts = {0: _part(read_to=4)}
    for _ in range(200):
        firing.probe(parts, [0])
        clock.now += 0.1
    assert fresh.asked >= 1
    assert parts[0].clock.read_through() > 1000.0
