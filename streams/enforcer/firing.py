"""Firing due deadlines on the owned partitions, once each is proven read far enough in broker
time (horizon.py): positions, last-stable-offset probes, the per-batch fire limit."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.enforcer.runtime import PartitionRuntime
from streams.logsetup import error_fields
from streams.offsets import Probe
from streams.settings import TopicNames

log = logging.getLogger(__name__)

Parts = dict[int, PartitionRuntime]
PROBE_TIMEOUT_S = 5.0


class Firing:
    def __init__(
        self,
        consumer: Consumer,
        admin: AdminClient,
        topics: TopicNames,
        budget: float,
        batch_size: int,
        clock: Callable[[], float],
    ) -> None:
        self._consumer = consumer
        self._admin = admin
        self._topics = topics  # the loop's own: its input name is read at each use
        self._budget = budget
        self._batch_size = batch_size
        self._clock = clock

    def fire_due(self, parts: Parts, now: float) -> None:
        """End every session whose deadline has passed and whose partition is known to be read
        through it in broker time; then drop expired ended-session markers."""
        self._refresh_positions(parts)
        budget = self._budget
        due: list[int] = []
        unproven: list[int] = []
        for p, rt in parts.items():
            rt.clock.advance(rt.read_to())
            deadline = rt.enforcer.state.due_by(now - budget)
            if deadline is not None:
                due.append(p)
                if rt.clock.needs_probe(deadline, budget):
                    unproven.append(p)
        if unproven:
            self.probe(parts, unproven)
        # Bounded per batch: a mass expiry (every session of a burst of logins) is spread over
        # several transactions instead of one that outgrows the producer's queue.
        limit = max(1, self._batch_size // max(1, len(due)))
        for p in due:
            rt = parts[p]
            rt.enforcer.fire_due(rt.clock.horizon(now, budget), now, limit)
        for rt in parts.values():
            rt.enforcer.state.forget_expired(now)

    def probe_ahead(self, parts: Parts) -> bool:
        """Probe partitions with due deadlines before consuming: the batch about to be read can
        then prove them, and they fire in this transaction rather than the next. Returns
        whether any deadline is due (the loop then waits less for input)."""
        until = self._clock() - self._budget
        due = []
        any_due = False
        for p, rt in parts.items():
            deadline = rt.enforcer.state.due_by(until)
            if deadline is not None:
                any_due = True
                if rt.clock.needs_probe(deadline, self._budget):
                    due.append(p)
        if due:
            self.probe(parts, due)
        return any_due

    def probe(self, parts: Parts, partitions: list[int]) -> None:
        """Ask the broker for the last stable offsets (one round trip, never a cached value:
        that can be stale for a partition just assigned)."""
        taken = self._clock()
        tps = [TopicPartition(self._topics.input, p) for p in partitions]
        try:
            probe = Probe(self._admin, tps, taken, PROBE_TIMEOUT_S, earliest=False)
        except KafkaException as exc:
            log.warning("last-stable-offset probe failed", extra=error_fields(exc))
            return
        # The request times out after PROBE_TIMEOUT_S; the wait only guards against a hang.
        if not probe.wait(2 * PROBE_TIMEOUT_S):
            why = error_fields(probe.error) if probe.error else {"error": "timed out"}
            log.warning("last-stable-offset probe failed", extra=why)
            return
        assert probe.ends is not None
        for p, (_, end) in probe.ends.items():
            rt = parts.get(p)
            if rt is not None:
                rt.clock.probed(taken, end, rt.read_to())

    def _refresh_positions(self, parts: Parts) -> None:
        tps = [TopicPartition(self._topics.input, p) for p in parts]
        for tp in self._consumer.position(tps):
            if tp.offset >= 0 and tp.partition in parts:
                parts[tp.partition].position = tp.offset
