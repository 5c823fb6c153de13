"""The enforcer's partitions through rebalances: assigned ones are paused and restored a slice
per loop turn (restore.py), then owned from their committed input offsets; revoked ones are
snapshotted (when local state is on) and dropped. Rebalance callbacks run inside
``consume()``, when no transaction is open."""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, Consumer, Message, TopicPartition

from sessionwarden.enforcer.context import EnforcerContext
from sessionwarden.enforcer.engine.horizon import PartitionClock
from sessionwarden.enforcer.engine.partition import PartitionState
from sessionwarden.enforcer.restore import Pending, Restorer
from sessionwarden.enforcer.runtime import PartitionRuntime
from sessionwarden.enforcer.txn import CONSUME, Action, TxnFailure, consumer_fatal

log = logging.getLogger(__name__)

RESTORE_SLICE_S = 0.2  # changelog reading per loop turn while partitions restore


class Assignments:
    """Owned partitions (``ctx.parts``, shared with the loop and the batch) and those still
    restoring (``restorer``)."""

    def __init__(self, ctx: EnforcerContext, consumer: Consumer, restorer: Restorer) -> None:
        self._consumer = consumer
        self._topics = ctx.topics
        self._lag_grace_s = ctx.settings.enforcer.lag_grace_s
        self.parts = ctx.parts
        self._stats = ctx.stats
        self._metrics = ctx.metrics
        self._checkpoints = ctx.checkpoints
        self.restorer = restorer
        self.skipped: set[int] = set()  # restoring partitions whose input showed up anyway
        self.generation = 0  # counts rebalance callbacks: records consumed before one are stale

    # -- local snapshots (checkpoints.py) ---------------------------------------------------

    def forget(self, partitions: list[int]) -> None:
        if self._checkpoints is not None:
            self._checkpoints.forget(partitions)

    def shutdown(self, committed: bool) -> None:
        """On a clean stop: snapshot what changed (if the state is the committed one)."""
        if self._checkpoints is not None:
            if committed:
                self._checkpoints.flush(self._states())
            self._checkpoints.close()

    def _states(self) -> dict[int, PartitionState]:
        return {p: rt.enforcer.state for p, rt in self.parts.items()}

    # -- owned and restoring partitions ------------------------------------------------------

    def unowned(self, msgs: list[Message]) -> None:
        """Records of no owned partition: fatal errors, and input of restoring partitions
        (dropped: ``_restored`` seeks back to read it again)."""
        for msg in msgs:
            err = msg.error()
            if err is not None and consumer_fatal(err):
                raise TxnFailure(Action.REBUILD, err, CONSUME)
            if err is None and msg.partition() in self.restorer.pending:
                self.skipped.add(msg.partition())

    def rewind(self) -> None:
        """Seek every owned partition back to its committed input offset (after an abort)."""
        if not self.parts:
            return
        tps = [TopicPartition(self._topics.input, p) for p in self.parts]
        for tp in self._consumer.committed(tps, 30):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            self.parts[tp.partition].next_offset = max(tp.offset, 0)

    # -- rebalances and restore ---------------------------------------------------------------

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Take the partitions paused; ``step`` restores them."""
        self.generation += 1
        consumer.incremental_assign(partitions)
        if not partitions:
            return
        consumer.pause(partitions)
        for tp in partitions:
            self.restorer.add(tp.partition)
        self._metrics.restore_begin([tp.partition for tp in partitions])
        log.info(
            "restoring newly assigned partitions",
            extra={"partitions": sorted(tp.partition for tp in partitions)},
        )

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.generation += 1
        revoked = [tp.partition for tp in partitions]
        if self._checkpoints is not None:  # what they hold is committed: keep it locally
            self._checkpoints.flush({p: s for p, s in self._states().items() if p in revoked})
            self._checkpoints.forget(revoked)
        for p in revoked:
            self.parts.pop(p, None)
            self.restorer.drop(p)
        self._metrics.partitions_revoked(revoked)
        if partitions:
            log.info("partitions revoked", extra={"partitions": sorted(revoked)})

    def step(self) -> None:
        """Between transactions: snapshot a partition if one is due; restore a slice of the
        partitions assigned last and take up those that are complete."""
        if self._checkpoints is not None:
            self._checkpoints.tick(self._states())
        done = self.restorer.step(RESTORE_SLICE_S)
        self._stats.restored_records = self.restorer.restored_records
        if done:
            self._restored(done)

    def _restored(self, done: list[tuple[int, Pending]]) -> None:
        """Own the restored partitions from their committed input offsets and resume them."""
        tps = [TopicPartition(self._topics.input, p) for p, _ in done]
        committed = {tp.partition: tp.offset for tp in self._consumer.committed(tps, 30)}
        for p, pending in done:
            start = committed.get(p, OFFSET_INVALID)
            rt = PartitionRuntime(pending.enforcer, PartitionClock(self._lag_grace_s))
            rt.next_offset = start if start >= 0 else 0
            self.parts[p] = rt
            if p in self.skipped:  # input read while paused was dropped: read it again
                self.skipped.discard(p)
                self._consumer.seek(
                    TopicPartition(self._topics.input, p, start if start >= 0 else OFFSET_BEGINNING)
                )
            if self._checkpoints is not None:
                self._checkpoints.restored(p, pending.high, pending.records, not pending.snapshot)
        self._consumer.resume(tps)
        self._stats.last_restore_s = max(time.monotonic() - p.started for _, p in done)
        self._metrics.restore_end(done)
        log.info(
            "partitions assigned and restored",
            extra={
                "partitions": sorted(p for p, _ in done),
                "restoring": sorted(self.restorer.pending),  # empty: every partition is ready
                "live_sessions": sum(
                    rt.enforcer.state.live_sessions() for rt in self.parts.values()
                ),
                "restored_records": sum(p.records for _, p in done),
                "from_snapshot": sorted(p for p, pending in done if pending.snapshot),
                "restore_s": round(self._stats.last_restore_s, 3),
            },
        )
