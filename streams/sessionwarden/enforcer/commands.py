"""Operator commands in the enforcer's shell: read beside the input, applied in its batches.

The commands topic is co-partitioned with the input: the instance that owns input partition
``p`` owns commands partition ``p`` too. The group's assignor (cooperative-sticky) does not
promise that for two subscribed topics, so commands are not subscribed: a reader of its own
(assign only, never joins a group) follows the input's assignment, starts from the offsets
the enforcer's group committed for the commands partitions, and its offsets are sent to each
transaction with the input's. A command is therefore applied, its revocations produced and
its offset committed in one transaction, fenced like the rest by the group's generation.

A command appended at broker time ``r`` is applied only once its input partition is known
read through ``r`` (the same clock that holds deadlines back): every login appended before it
has been applied by then, so no session the operator meant to end can begin after the command
in the enforcer's view. Until then it waits in ``CommandQueue``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from sessionwarden.contracts.codec import DecodeError, decode_operator_command
from sessionwarden.enforcer.engine.commands import CommandOutcome, OperatorCommands
from sessionwarden.enforcer.engine.forward import Router
from sessionwarden.enforcer.engine.horizon import received_time
from sessionwarden.kafka.stall import Stall, StallWatch
from sessionwarden.ops.logs import error_fields

__all__ = [
    "CommandQueue",
    "CommandRecord",
    "CommandsReader",
    "DeadLetterSink",
    "apply_command_record",
]

log = logging.getLogger(__name__)


class CommandRecord(Protocol):
    """The part of a consumed confluent_kafka.Message a command needs."""

    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def topic(self) -> str | None: ...


DeadLetterSink = Callable[[str, str, Any], None]
"""``Outputs.dead_letter``: reason, detail, the record."""


def command_received(msg: CommandRecord, now: float) -> float:
    """The command's broker append time (the topic is LogAppendTime), else ``now``."""
    r = received_time(msg.timestamp(), TIMESTAMP_LOG_APPEND_TIME)
    return now if r is None else r


def apply_command_record(
    commands: OperatorCommands,
    router: Router,
    msg: CommandRecord,
    now: float,
    dead_letter: DeadLetterSink,
    limit: int | None = None,
    held: bool = False,
) -> CommandOutcome | None:
    """Decode and apply one command record; a bad one is dead-lettered with its reason and
    changes nothing. ``held``: its tenant record committed in an earlier batch. Returns the
    outcome (None when dead-lettered before applying)."""
    try:
        cmd = decode_operator_command(msg.value())
    except DecodeError as exc:
        dead_letter(exc.reason, exc.detail, msg)
        return None
    key = msg.key()
    if cmd.user_id is not None and key != cmd.user_id.encode():
        detail = "a command naming a user is keyed by its user_id, like the user's auth events"
        dead_letter("key_mismatch", detail, msg)
        return None
    partition = msg.partition()
    if key is not None and partition is not None and router.target(key, partition) is not None:
        # The user's sessions are on another partition: applied here it would end nothing.
        dead_letter("key_mismatch", "command on another partition than its key's", msg)
        return None
    outcome = commands.apply(cmd, now, command_received(msg, now), limit, held)
    if outcome.refused is not None:
        dead_letter(*outcome.refused, msg)
    elif outcome.status in ("applied", "partial", "held"):
        log.info(
            "operator command applied",
            extra={
                "command_id": str(cmd.command_id),
                "operator": cmd.operator,
                "scope": cmd.scope,
                "partition": partition,
                "revoked": outcome.revoked,
                "complete": outcome.status == "applied",
                "held": outcome.status == "held",
            },
        )
    return outcome


class CommandQueue:
    """Command records consumed for owned partitions, waiting until their input partition is
    read through their append time; what a batch took, so an abort can put it back; and the
    partitions whose first command's tenant record has committed (``held``)."""

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._holding: set[int] = set()  # held in the open batch, firm once it commits
        self._waiting: dict[int, deque[CommandRecord]] = {}
        self._next: dict[int, int] = {}  # committed-to-be: the next offset of each partition
        self._taken: list[CommandRecord] = []
        self._saved: dict[int, int] = {}

    def own(self, partition: int, next_offset: int | None) -> None:
        """Own ``partition`` from ``next_offset`` (None: the group committed none yet)."""
        self._waiting[partition] = deque()
        self._held.discard(partition)
        if next_offset is not None:
            self._next[partition] = next_offset

    def disown(self, partition: int) -> None:
        self._waiting.pop(partition, None)
        self._held.discard(partition)
        self._holding.discard(partition)
        self._next.pop(partition, None)

    def owned(self) -> list[int]:
        return sorted(self._waiting)

    def add(self, msg: CommandRecord) -> None:
        """A record the reader consumed; dropped if its partition is not owned any more."""
        p = msg.partition()
        waiting = self._waiting.get(p) if p is not None else None
        if waiting is not None:
            waiting.append(msg)

    def waiting(self, partition: int) -> int:
        return len(self._waiting.get(partition, ()))

    def first_received(self, partition: int, now: float) -> float | None:
        """The append time of the partition's first waiting command, or None."""
        waiting = self._waiting.get(partition)
        return command_received(waiting[0], now) if waiting else None

    def ready(self, partition: int, read_through: float, now: float) -> CommandRecord | None:
        """The partition's first waiting command if it was appended at or before
        ``read_through``; it stays first until ``done``."""
        waiting = self._waiting.get(partition)
        if waiting and command_received(waiting[0], now) <= read_through:
            return waiting[0]
        return None

    def done(self, partition: int) -> None:
        """The first waiting command is applied (or dead-lettered) in the open batch: its
        offset commits with it."""
        msg = self._waiting[partition].popleft()
        self._held.discard(partition)
        self._taken.append(msg)
        offset = msg.offset()
        if offset is not None:
            self._saved.setdefault(partition, self._next.get(partition, -1))
            self._next[partition] = offset + 1

    def hold(self, partition: int) -> None:
        """The first waiting command's tenant record went out in the open batch: once it
        commits, the command goes on ``held`` (it stays first in line)."""
        self._holding.add(partition)

    def held(self, partition: int) -> bool:
        return partition in self._held

    def take(self, partition: int, read_through: float, now: float) -> list[CommandRecord]:
        """Every ready command of the partition, each ``done``."""
        taken: list[CommandRecord] = []
        while (msg := self.ready(partition, read_through, now)) is not None:
            self.done(partition)
            taken.append(msg)
        return taken

    def next_offsets(self) -> dict[int, int]:
        """Every owned partition's next offset to apply (where the group committed one)."""
        return dict(self._next)

    def offsets(self) -> dict[int, int]:
        """The next offset of every partition the open batch took commands from, to commit
        with it (the others' are committed already)."""
        return {p: self._next[p] for p in self._saved if p in self._next}

    def committed(self) -> None:
        self._held |= self._holding & self._waiting.keys()
        self._holding.clear()
        self._taken.clear()
        self._saved.clear()

    def aborted(self) -> None:
        """The batch's transaction aborted: its commands wait again, first in line (one held
        in it holds again)."""
        self._holding.clear()
        for msg in reversed(self._taken):
            p = msg.partition()
            if p is not None and p in self._waiting:
                self._waiting[p].appendleft(msg)
        for p, offset in self._saved.items():
            if p in self._waiting:
                if offset < 0:
                    self._next.pop(p, None)
                else:
                    self._next[p] = offset
        self.committed()


class CommandsReader:
    """Reads the commands partitions of the owned input partitions (assign only) into
    ``queue``. ``group`` is the enforcer's group consumer: its committed offsets for the
    commands topic are where a newly owned partition starts."""

    def __init__(
        self,
        consumer: Any,
        group: Any,
        topic: str,
        queue: CommandQueue,
        reopen: Callable[[], Any] | None = None,
        watch: StallWatch | None = None,
        stalled: Callable[[], object] | None = None,
    ) -> None:
        """``watch`` (with ``reopen``, which makes a new consumer): a consumer that stops
        fetching with commands waiting (kafka.stall) is replaced by one assigned where it
        stood; what it consumed waits in ``queue``, so nothing is skipped or taken twice.
        ``stalled`` is told of each replacement (the metrics)."""
        self._consumer = consumer
        self._group = group
        self.topic = topic
        self.queue = queue
        self._reopen = reopen
        self._watch = watch
        self._stalled = stalled
        self.reopened = 0
        self._logged: set[int] = set()

    def follow(self, owned: Iterable[int]) -> None:
        """Assign the commands partitions of ``owned``; drop those no longer owned."""
        want = set(owned)
        have = set(self.queue.owned())
        gone = sorted(have - want)
        new = sorted(want - have)
        if gone:
            self._consumer.incremental_unassign([TopicPartition(self.topic, p) for p in gone])
            for p in gone:
                self.queue.disown(p)
        if new:
            tps = [TopicPartition(self.topic, p) for p in new]
            start = []
            for tp in self._group.committed(tps, 30):
                offset = tp.offset if tp.offset >= 0 else None
                self.queue.own(tp.partition, offset)
                start.append(
                    TopicPartition(
                        self.topic, tp.partition, OFFSET_BEGINNING if offset is None else offset
                    )
                )
            self._consumer.incremental_assign(start)

    def poll(self) -> None:
        """Take what has arrived, without waiting. An error is logged once per kind (a
        missing commands topic would otherwise log at every turn)."""
        if not self.queue.owned():
            return
        for msg in self._consumer.consume(1000, 0):
            err = msg.error()
            if err is None:
                self.queue.add(msg)
            elif err.code() != KafkaError._PARTITION_EOF and err.code() not in self._logged:
                self._logged.add(err.code())
                log.warning("commands consumer error", extra={"error": str(err)})
        if self._watch is not None:
            self._watch.tend(
                self._consumer,
                self._replace,
                "the commands consumer stopped fetching with commands waiting: reopened where"
                " it stood",
            )

    def _replace(self, stall: Stall) -> None:
        assert self._reopen is not None
        stuck, self._consumer = self._consumer, self._reopen()
        self.reopened += 1
        if self._stalled is not None:
            self._stalled()
        owned = set(self.queue.owned())
        self._consumer.incremental_assign(
            [tp for tp in stall.resume_at(OFFSET_BEGINNING) if tp.partition in owned]
        )
        try:
            stuck.close()
        except (KafkaException, RuntimeError) as exc:
            log.debug("closing the stalled commands consumer failed", extra=error_fields(exc))

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p, o) for p, o in self.queue.offsets().items()]

    def close(self) -> None:
        self._consumer.close()
