"""Incremental restore of newly assigned partitions from the enforcer's changelog.

Driven from the main loop a slice at a time, so partitions already owned keep firing their
deadlines while another one restores. A partition restoring is paused on the input consumer:
none of its input is processed and none of its deadlines fire until its state is whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from sessionwarden.enforcer.checkpoints import Checkpoints
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.runtime import restoring_heap
from sessionwarden.kafka.offsets import valid_offset
from sessionwarden.kafka.stall import Ends, FetchStall, Key
from sessionwarden.ops.logs import error_fields

log = logging.getLogger(__name__)

LEADERSHIP_ERRORS = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    }
)
SLICE_RECORDS = 10_000
NEW_ADMIN_AFTER_S = 5.0
"""A changelog end-offset lookup failing this long is asked of a new admin client: after a
broker was killed, one was seen answering OFFSET_INVALID for all of its 30 s of retries (the
restore held the loop), and a new client answered at once."""


@dataclass
class Pending:
    enforcer: PartitionEnforcer
    end: int | None = None  # changelog high watermark at assignment; None until known
    records: int = 0
    started: float = 0.0
    start: int = 0  # the changelog offset to read from: a snapshot's, or 0
    low: int = 0  # the changelog's low and high watermarks (``end`` is 0 when it is empty)
    high: int = 0
    checked: bool = False  # whether to start from a snapshot is decided (``start`` is known)
    snapshot: bool = False  # the state began from a local snapshot

    def ready(self) -> bool:
        """The restore can begin (or, with nothing to read, is complete)."""
        return self.end is not None and self.checked

    def reading(self) -> bool:
        return self.checked and bool(self.end) and self.start < (self.end or 0)


class Restorer:
    """Reads changelog partitions (read_committed) up to their end: from a local snapshot's
    offset when ``checkpoints`` has a usable one (loaded into a fresh enforcer), else from the
    beginning."""

    def __init__(
        self,
        consumer: Consumer,
        admin: AdminClient,
        topic: str,
        make: Callable[[int], PartitionEnforcer],
        checkpoints: Checkpoints | None = None,
        admin_factory: Callable[[], AdminClient] | None = None,
        consumer_factory: Callable[[], Consumer] | None = None,
        stall_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        stalled: Callable[[], object] | None = None,
    ) -> None:
        """``admin_factory`` builds a new admin client when the end-offset lookups keep
        failing (None: the one given is kept). ``consumer_factory`` builds a new changelog
        consumer when the one reading stands still for ``stall_s`` below the ends (None: it
        is kept; kafka.stall), on the ``monotonic`` clock; ``stalled`` is told of each new
        one (the metrics)."""
        self._consumer = consumer
        self._consumer_factory = consumer_factory
        self._monotonic = monotonic
        self._stall = FetchStall(stall_s, monotonic())
        self._stalled = stalled
        self.reopened = 0
        self._admin = admin
        self._admin_factory = admin_factory
        self._topic = topic
        self._make = make
        self._checkpoints = checkpoints
        self.pending: dict[int, Pending] = {}
        self.restored_records = 0
        self._assigned: set[int] = set()
        self._decoding: list[tuple[int, Pending]] = []  # read to their end, still decoding

    def close(self) -> None:
        self._consumer.close()

    def add(self, partition: int) -> None:
        self.pending[partition] = Pending(self._make(partition), started=time.monotonic())

    def drop(self, partition: int) -> None:
        """A partition revoked before its restore finished."""
        if self.pending.pop(partition, None) is not None:
            self._decoding = [(n, p) for n, p in self._decoding if n != partition]
            self._assign()

    def step(self, timeout: float) -> list[tuple[int, Pending]]:
        """Restore for up to about ``timeout`` seconds; returns the partitions now complete."""
        if not self.pending:
            return []
        if any(p.end is None for p in self.pending.values()):
            self._find_ends()
        unchecked = [(n, p) for n, p in self.pending.items() if not p.ready()]
        if unchecked:  # one snapshot load per turn: owned partitions keep firing between them
            self._from_snapshot(*unchecked[0])
            self._assign()
            if len(unchecked) > 1:
                return []
        done = [(n, p) for n, p in self.pending.items() if p.ready() and not p.reading()]
        decoding = {n for n, _ in self._decoding}
        deadline = time.monotonic() + timeout  # reading and decoding share the slice
        if len(done) + len(decoding) < len(self.pending):
            while time.monotonic() < deadline:
                msgs = self._consumer.consume(SLICE_RECORDS, min(timeout, 0.05))
                for msg in msgs:
                    if msg.error() is not None:
                        continue
                    pending = self.pending.get(msg.partition())
                    if pending is None:
                        continue
                    key = msg.key()
                    pending.enforcer.state.restore(
                        key.decode() if key is not None else "", msg.value()
                    )
                    pending.records += 1
                self.restored_records += len(msgs)
                if not msgs:
                    break
            self._decoding.extend(e for e in self._reached_end() if e[0] not in decoding)
            self._watch_reading()
        done.extend(self._decode(deadline))
        for n, p in done:
            del self.pending[n]
            with restoring_heap():
                p.enforcer.state.finish_restore()
        if done:
            self._assign()
        return done

    def _decode(self, deadline: float) -> list[tuple[int, Pending]]:
        """Decode the records of partitions read to their end until ``deadline`` (monotonic);
        returns those with nothing left to decode."""
        ready: list[tuple[int, Pending]] = []
        with restoring_heap():
            for n, p in list(self._decoding):
                while time.monotonic() < deadline:
                    if p.enforcer.state.decode_restored(SLICE_RECORDS):
                        ready.append((n, p))
                        self._decoding.remove((n, p))
                        break
                else:
                    return ready
        return ready

    def _find_ends(self) -> None:
        unknown = [n for n, p in self.pending.items() if p.end is None]
        bounds = self._bounds(unknown)
        if self._checkpoints is not None:  # what snapshots are checked against, and name
            self._checkpoints.read_facts(self._admin)
        for n, (low, high) in bounds.items():
            pending = self.pending[n]
            pending.end = high if high > low else 0
            pending.low, pending.high = low, high
            pending.checked = not pending.end or self._checkpoints is None
        self._assign()

    def _from_snapshot(self, n: int, pending: Pending) -> None:
        """Load the partition's snapshot if it fits; else restore from the start."""
        assert self._checkpoints is not None
        pending.checked = True
        with restoring_heap():
            start = self._checkpoints.load(pending.enforcer.state, n, pending.low, pending.high)
        if start is None:
            pending.enforcer = self._make(n)  # whatever a failed load left is discarded
        else:
            pending.start, pending.snapshot = start, True

    def _assign(self) -> None:
        """Read exactly the pending partitions with a changelog, each from where it got to."""
        wanted = {n for n, p in self.pending.items() if p.reading()}
        gone = self._assigned - wanted
        new = wanted - self._assigned
        if gone:
            self._consumer.incremental_unassign([TopicPartition(self._topic, n) for n in gone])
        if new:
            self._consumer.incremental_assign(
                [
                    TopicPartition(self._topic, n, self.pending[n].start or OFFSET_BEGINNING)
                    for n in new
                ]
            )
        self._assigned = wanted

    def _watch_reading(self) -> None:
        """The changelog consumer's positions standing still for ``stall_s`` below the ends
        read at assignment (after a hung broker a consumer can stop fetching for good;
        kafka.stall) would keep its partitions paused and unenforced for good: it is replaced
        by one assigned where it stood (what it read is restored; a record read again would
        only set its key again). A transaction still open on the changelog (a dead owner's,
        until the broker aborts it) holds the position as well; reopening then costs a
        reconnect and nothing else."""
        if self._consumer_factory is None:
            return
        decoding = {n for n, _ in self._decoding}
        reading = [n for n, p in self.pending.items() if p.reading() and n not in decoding]
        if not reading:
            return
        at = {  # every partition assigned, those read to their end (decoding) too
            tp.partition: tp.offset
            for tp in self._consumer.position(
                [TopicPartition(self._topic, n) for n in sorted(self._assigned)]
            )
        }
        positions: dict[Key, int] = {(self._topic, n): at.get(n, -1) for n in reading}
        now = self._monotonic()
        self._stall.observe(positions, now)
        if not self._stall.due(now):
            return
        ends = {
            (self._topic, n): Ends(self.pending[n].low, self.pending[n].end or 0) for n in reading
        }
        if not self._stall.stalled(ends, now):
            return
        log.warning(
            "the changelog consumer stopped reading below the ends: reopened where it stood",
            extra={"positions": {str(n): at.get(n) for n in reading}},
        )
        old, self._consumer = self._consumer, self._consumer_factory()
        try:
            old.close()
        except (KafkaException, RuntimeError) as exc:
            log.debug("closing the stalled changelog consumer failed", extra=error_fields(exc))
        self.reopened += 1
        if self._stalled is not None:
            self._stalled()
        self._stall.restart(now)
        resume = {n: at.get(n, -1) for n in self._assigned}
        self._consumer.incremental_assign(
            [
                TopicPartition(
                    self._topic, n, o if o >= 0 else (self.pending[n].start or OFFSET_BEGINNING)
                )
                for n, o in sorted(resume.items())
            ]
        )

    def _reached_end(self) -> list[tuple[int, Pending]]:
        reading = [n for n, p in self.pending.items() if p.reading()]
        if not reading:
            return []
        tps = [TopicPartition(self._topic, n) for n in reading]
        done = []
        for tp in self._consumer.position(tps):
            pending = self.pending[tp.partition]
            if pending.end is not None and tp.offset >= pending.end:
                done.append((tp.partition, pending))
        return done

    def _bounds(self, partitions: list[int], timeout: float = 30.0) -> dict[int, tuple[int, int]]:
        """Per partition, the changelog's (low, high) watermarks; it is restored up to the high
        watermark, not the last stable offset, so a transaction still open (a dead owner's, or
        one being committed as it died) is waited for rather than restored without. Retries
        while a leader is being elected, with a new admin client every ``NEW_ADMIN_AFTER_S``."""
        deadline = time.monotonic() + timeout
        failing_since: float | None = None
        while True:
            try:
                low = self._offsets(partitions, OffsetSpec.earliest())
                high = self._offsets(partitions, OffsetSpec.latest())
                return {p: (low[p], high[p]) for p in partitions}
            except KafkaException as exc:
                err = exc.args[0]
                retry = err.retriable() or err.code() in LEADERSHIP_ERRORS
                now = time.monotonic()
                if not retry or now > deadline:
                    raise
                if failing_since is None:
                    failing_since = now
                elif self._admin_factory is not None and now - failing_since >= NEW_ADMIN_AFTER_S:
                    log.warning(
                        "changelog end offsets failing: asking a new admin client",
                        extra={"failing_s": round(now - failing_since, 3), **error_fields(exc)},
                    )
                    self._admin = self._admin_factory()
                    failing_since = now
                time.sleep(0.2)

    def _offsets(self, partitions: list[int], spec: OffsetSpec) -> dict[int, int]:
        futures = self._admin.list_offsets(
            {TopicPartition(self._topic, p): spec for p in partitions},
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=10,
        )
        # An invalid offset (a frozen broker's OFFSET_INVALID) raises, retriable: it is retried
        # like a leader election, never taken for the end of an empty changelog.
        return {tp.partition: valid_offset(tp, f) for tp, f in futures.items()}
