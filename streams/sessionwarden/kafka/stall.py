"""Whether a consumer has stopped fetching: none of its positions moved for a while although the
broker holds records past one of them. After a broker frozen for a while (a long GC pause, a
stuck disk, a network partition) and thawed, a librdkafka consumer was seen to fetch nothing
more for good, its thread alive and its records waiting, while a new consumer read them all;
its cached watermarks stood still too, so its own lag read 0. Reopening it where it stood (or at
the offsets its owner stored) resumes it.

Where the partitions end is asked through an admin client of the watch's own
(:class:`AdminEnds`), never through the watched consumer: a consumer whose connection to the
broker is wedged cannot answer for itself either (its uncached watermark query goes over that
connection, so a watch that asked it saw "unknown" for good and never reopened it: a test reader
stayed at 138 of 260 revocations while the enforcer and the sink had all of them; with its fetch
connection held silent in a test, a consumer that asked itself was never reopened, and librdkafka
gave up on the connection only after socket.timeout.ms, 60 s). An admin client that keeps
failing is built anew, as a fresh connection is what the thaw needs.

:class:`FetchStall` is the decision, on a clock the caller gives; :class:`StallWatch` probes a
consumer for it (positions, then the ends, each ask bounded) and says when its owner should
reopen the consumer (:meth:`StallWatch.tend` does it with the owner's reopen). An end the broker
does not give (an error, a timeout, an invalid offset) is unknown: never "caught up", and never
a reason to reopen by itself, since a broker that does not answer is not a consumer that
stopped."""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from sessionwarden.kafka.offsets import AdminLike, valid_offset
from sessionwarden.ops.logs import error_fields

log = logging.getLogger(__name__)

Key = tuple[str, int]
"""(topic, partition)."""

RENEW_AFTER = 2
"""Checks in a row whose ends were all unknown before the ends are asked of a new client."""


@dataclass(frozen=True)
class Ends:
    """A partition's low and high watermarks as the broker gave them (read_committed: the high
    one is the last stable offset). A low watermark not asked for is -1."""

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
    ``stall_s`` later. ``renew_probe`` says when the ends went unanswered on ``RENEW_AFTER``
    asks in a row: the client asked is itself suspect, ask a new one."""

    def __init__(self, stall_s: float, now: float) -> None:
        if stall_s <= 0:
            raise ValueError("stall_s must be positive")
        self.stall_s = stall_s
        self.positions: dict[Key, int] = {}
        self.unanswered = 0  # asks in a row that got no end at all
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
        known = [e for e in ends.values() if e is not None and e.high >= 0]
        self.unanswered = 0 if known or not ends else self.unanswered + 1
        verdict = any(behind(self.positions.get(k, -1), e) for k, e in ends.items())
        self._moved_at = now
        return verdict

    def renew_probe(self) -> bool:
        if self.unanswered < RENEW_AFTER:
            return False
        self.unanswered = 0
        return True

    def restart(self, now: float) -> None:
        """Forget the positions (a new consumer starts where its owner puts it)."""
        self.positions = {}
        self._moved_at = now


class EndsProbe(Protocol):
    """Where partitions end (and, for those never read from, begin), asked of the broker."""

    def __call__(self, positions: Mapping[Key, int], timeout: float) -> dict[Key, Ends | None]: ...

    def renew(self) -> None: ...


class AdminEnds:
    """An :class:`EndsProbe` on an admin client of its own, made by ``make`` on first use and
    again after :meth:`renew`. The last stable offsets (read_committed) of every partition
    asked, and the low watermarks of those with a negative position, in one bounded round;
    a partition whose answer is an error, an invalid offset or late is unknown."""

    def __init__(self, make: Callable[[], AdminLike]) -> None:
        self._make = make
        self._admin: AdminLike | None = None
        self.renewals = 0

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> AdminEnds:
        """On an AdminClient of ``config`` (the client's connection and security settings)."""
        conf = dict(config)
        return cls(lambda: AdminClient(conf))

    def renew(self) -> None:
        self._admin = None
        self.renewals += 1

    def __call__(self, positions: Mapping[Key, int], timeout: float) -> dict[Key, Ends | None]:
        ends: dict[Key, Ends | None] = dict.fromkeys(positions)
        if not positions:
            return ends
        if self._admin is None:
            self._admin = self._make()
        tps = {key: TopicPartition(*key) for key in sorted(positions)}
        try:
            high = self._ask(self._admin, {tps[k]: OffsetSpec.latest() for k in tps}, timeout)
            unread = [k for k, o in positions.items() if o < 0]
            low = self._ask(self._admin, {tps[k]: OffsetSpec.earliest() for k in unread}, timeout)
        except KafkaException as exc:
            log.debug("end offsets unavailable", extra=error_fields(exc))
            return ends
        futures = [*high.values(), *low.values()]
        concurrent.futures.wait(futures, timeout + 1.0)  # the request times out by itself
        for key, tp in tps.items():
            end = _answer(tp, high.get(tp))
            if end is not None:
                begin = _answer(tp, low.get(tp)) if tp in low else None
                ends[key] = Ends(-1 if begin is None else begin, end)
        return ends

    @staticmethod
    def _ask(
        admin: AdminLike, specs: dict[TopicPartition, OffsetSpec], timeout: float
    ) -> dict[TopicPartition, concurrent.futures.Future[Any]]:
        if not specs:
            return {}
        return admin.list_offsets(
            specs, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
        )


def _answer(tp: TopicPartition, future: concurrent.futures.Future[Any] | None) -> int | None:
    if future is None or not future.done():
        return None
    try:
        return valid_offset(tp, future)
    except KafkaException:
        return None


class ProbedConsumer(Protocol):
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...


class SeekableConsumer(ProbedConsumer, Protocol):
    def seek(self, partition: TopicPartition) -> None: ...


def _seek_back(consumer: SeekableConsumer, stall: Stall) -> bool:
    """Seek every partition of ``stall`` with a known position to it; False if there is none
    or the consumer refuses (then only a new consumer will do)."""
    known = [TopicPartition(t, p, o) for (t, p), o in sorted(stall.positions.items()) if o >= 0]
    if not known:
        return False
    try:
        for tp in known:
            consumer.seek(tp)
    except (KafkaException, RuntimeError):
        return False
    return True


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

    def resume_at(self, otherwise: int) -> list[TopicPartition]:
        """Where a new consumer assigned by hand resumes: each partition at its position, or at
        ``otherwise`` (a logical offset) where it had none."""
        return [
            TopicPartition(t, p, o if o >= 0 else otherwise)
            for (t, p), o in sorted(self.positions.items())
        ]


class StallWatch:
    """Probes a consumer every ``check_every_s`` (on the owner's thread, between its polls);
    :meth:`check` returns a :class:`Stall` when the owner should reopen the consumer, else None.
    ``ends`` asks where the partitions end, never through the consumer watched (AdminEnds);
    ``fallback`` gives the position of a partition the consumer reports none for (the owner's
    own offsets, e.g. the sink's stored ones). One check blocks for at most about
    ``probe_timeout_s``."""

    def __init__(
        self,
        stall_s: float,
        ends: EndsProbe,
        *,
        check_every_s: float = 1.0,
        probe_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        fallback: Callable[[], Mapping[Key, int]] = dict,
    ) -> None:
        self.clock = clock
        self.check_every_s = check_every_s
        self.probe_timeout_s = probe_timeout_s
        self.ends = ends
        self._fallback = fallback
        now = clock()
        self.decision = FetchStall(stall_s, now)
        self._next_check = now + check_every_s
        self._sought: dict[Key, int] | None = None  # positions at the last seek back

    def check(
        self, consumer: ProbedConsumer, partitions: Sequence[TopicPartition] | None = None
    ) -> Stall | None:
        """``partitions``: the ones to watch (default: the consumer's whole assignment; an
        owner that pauses some passes the others)."""
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.check_every_s
        try:
            assigned = list(consumer.assignment() if partitions is None else partitions)
            positions = self._positions(consumer.position(assigned) if assigned else [])
        except KafkaException:
            return None  # unknown: checked again next time
        self.decision.observe(positions, now)
        if not positions or not self.decision.due(now):
            return None
        still_s = self.decision.still_for(now)
        ends = self.ends(positions, self.probe_timeout_s)
        stalled = self.decision.stalled(ends, self.clock())
        if self.decision.renew_probe():
            log.info(
                "end offsets unanswered on %d asks in a row: asking a new admin client",
                RENEW_AFTER,
                extra={"partitions": len(positions)},
            )
            self.ends.renew()
        return Stall(still_s, positions, ends) if stalled else None

    def tend(
        self,
        consumer: SeekableConsumer,
        reopen: Callable[[Stall], object],
        said: str,
        partitions: Sequence[TopicPartition] | None = None,
    ) -> Stall | None:
        """:meth:`check`, and on a stall: first each partition is sought back to where it
        stands (its fetch starts over, the consumer and its group membership stay: a consumer
        still reconnecting after a thawed broker resumes without a rejoin, which a group could
        make wait up to its session timeout); if it stalls again with nothing read since, log
        ``said`` (a warning with the stall's fields), have ``reopen`` replace the consumer.
        Either way the consumer gets ``stall_s`` to move. Returns the stall when the consumer
        was replaced, else None."""
        stall = self.check(consumer, partitions)
        if stall is None:
            return None
        if stall.positions != self._sought and _seek_back(consumer, stall):
            log.warning(
                "a Kafka consumer stopped fetching with records waiting: sought back to its"
                " positions",
                extra=stall.fields(),
            )
            self._sought = dict(stall.positions)
            self.reopened()
            return None
        log.warning(said, extra=stall.fields())
        reopen(stall)
        self._sought = None
        self.reopened()
        return stall

    def reopened(self) -> None:
        """The owner reopened the consumer: the new one gets ``stall_s`` to move."""
        self.decision.restart(self.clock())

    def _positions(self, tps: Sequence[TopicPartition]) -> dict[Key, int]:
        """Each partition's position; one the consumer reports none for stands where the last
        seek back put it (a sought partition has no position until it reads again), else
        where the owner's ``fallback`` says. Once a partition reads past its seek, the seek is
        forgotten."""
        sought = self._sought or {}
        if any(tp.offset >= 0 and tp.offset != sought.get((tp.topic, tp.partition)) for tp in tps):
            self._sought, sought = None, {}  # it read since the seek
        fallback = self._fallback()
        positions = {}
        for tp in tps:
            key = (tp.topic, tp.partition)
            at = sought.get(key, fallback.get(key, -1))
            positions[key] = tp.offset if tp.offset >= 0 else at
        return positions
