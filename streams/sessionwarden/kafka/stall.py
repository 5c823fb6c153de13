"""Whether a consumer has stopped fetching: none of its positions moved for a while although the
broker holds records past one of them. After a broker frozen for a minute (a long GC pause, a
stuck disk, a network partition) and thawed, a librdkafka consumer was seen to fetch nothing
more for good, its thread alive and its records waiting, while a new consumer read them all;
its cached watermarks stood still too, so its own lag read 0. Reopening it where it stood (or at
the offsets its owner stored) resumes it.

:class:`FetchStall` is the decision, on a clock the caller gives; :class:`StallWatch` probes a
consumer for it (positions, then the broker's end offsets, each ask bounded) and says when its
owner should reopen the consumer. An end the broker does not give (an error, a timeout, an
invalid offset) is unknown: never "caught up", and never a reason to reopen by itself, since a
broker that does not answer is not a consumer that stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import KafkaException, TopicPartition

Key = tuple[str, int]
"""(topic, partition)."""


@dataclass(frozen=True)
class Ends:
    """A partition's low and high watermarks as the broker gave them (read_committed: the high
    one is the last stable offset)."""

    low: int
    high: int


def behind(position: int, ends: Ends | None) -> bool:
    """Whether the broker holds records past ``position``. A negative position (nothing read
    since the assignment) is compared with the low watermark; an unknown end is never behind."""
    if ends is None or ends.high < 0:
        return False
    if position >= 0:
        return ends.high > position
    return ends.low >= 0 and ends.high > ends.low


class FetchStall:
    """``observe`` the positions on every check; ``due`` says when none has moved for
    ``stall_s`` (then ask the broker for the ends); ``stalled`` with those ends says whether to
    reopen: some partition's known end is past its position. Either answer starts the wait over:
    a reopened consumer gets ``stall_s`` to move, an idle or unanswered one is asked again
    ``stall_s`` later."""

    def __init__(self, stall_s: float, now: float) -> None:
        if stall_s <= 0:
            raise ValueError("stall_s must be positive")
        self.stall_s = stall_s
        self.positions: dict[Key, int] = {}
        self._moved_at = now

    def observe(self, positions: Mapping[Key, int], now: float) -> None:
        if dict(positions) != self.positions:
            self.positions = dict(positions)
            self._moved_at = now

    def still_for(self, now: float) -> float:
        return now - self._moved_at

    def due(self, now: float) -> bool:
        return self.still_for(now) >= self.stall_s

    def stalled(self, ends: Mapping[Key, Ends | None], now: float) -> bool:
        verdict = any(behind(self.positions.get(k, -1), e) for k, e in ends.items())
        self._moved_at = now
        return verdict

    def restart(self, now: float) -> None:
        """Forget the positions (a new consumer starts where its owner puts it)."""
        self.positions = {}
        self._moved_at = now


class ProbedConsumer(Protocol):
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int] | None: ...


@dataclass(frozen=True)
class Stall:
    """Why to reopen: the positions that stood still for ``still_s`` and the ends asked."""

    still_s: float
    positions: dict[Key, int]
    ends: dict[Key, Ends | None]

    def fields(self) -> dict[str, object]:
        """For a log line."""
        return {
            "still_s": round(self.still_s, 1),
            "positions": {f"{t}/{p}": o for (t, p), o in sorted(self.positions.items())},
            "ends": {
                f"{t}/{p}": (None if e is None else e.high)
                for (t, p), e in sorted(self.ends.items())
            },
        }


class StallWatch:
    """Probes a consumer every ``check_every_s`` (on the owner's thread, between its polls);
    :meth:`check` returns a :class:`Stall` when the owner should reopen the consumer, else None.
    ``fallback`` gives the position of a partition the consumer reports none for (the owner's
    own offsets, e.g. the sink's stored ones). Asking the ends stops at the first partition
    found behind, and at the first that fails (the rest are unknown), so one check blocks for at
    most ``probe_timeout_s``."""

    def __init__(
        self,
        stall_s: float,
        *,
        check_every_s: float = 1.0,
        probe_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        fallback: Callable[[], Mapping[Key, int]] = dict,
    ) -> None:
        self.clock = clock
        self.check_every_s = check_every_s
        self.probe_timeout_s = probe_timeout_s
        self._fallback = fallback
        now = clock()
        self.decision = FetchStall(stall_s, now)
        self._next_check = now + check_every_s

    def check(self, consumer: ProbedConsumer) -> Stall | None:
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.check_every_s
        try:
            assigned = list(consumer.assignment())
            positions = self._positions(consumer.position(assigned) if assigned else [])
        except KafkaException:
            return None  # unknown: checked again next time
        self.decision.observe(positions, now)
        if not positions or not self.decision.due(now):
            return None
        still_s = self.decision.still_for(now)
        ends = self._ends(consumer, sorted(positions))
        if self.decision.stalled(ends, self.clock()):
            return Stall(still_s, positions, ends)
        return None

    def reopened(self) -> None:
        """The owner reopened the consumer: the new one gets ``stall_s`` to move."""
        self.decision.restart(self.clock())

    def _positions(self, tps: Sequence[TopicPartition]) -> dict[Key, int]:
        fallback = self._fallback()
        positions = {}
        for tp in tps:
            key = (tp.topic, tp.partition)
            positions[key] = tp.offset if tp.offset >= 0 else fallback.get(key, -1)
        return positions

    def _ends(self, consumer: ProbedConsumer, keys: Sequence[Key]) -> dict[Key, Ends | None]:
        ends: dict[Key, Ends | None] = dict.fromkeys(keys)
        for key in keys:
            try:
                got = consumer.get_watermark_offsets(
                    TopicPartition(*key), timeout=self.probe_timeout_s, cached=False
                )
            except KafkaException:
                got = None
            if got is None:
                break  # the broker does not answer: this end and the rest stay unknown
            ends[key] = Ends(*got)
            if behind(self.decision.positions.get(key, -1), ends[key]):
                break
        return ends
