"""Firing due deadlines on the owned partitions, once each is proven read far enough in broker
time (horizon.py): positions, last-stable-offset probes, the per-batch fire limit.

A probe that is not answered, fails, or answers with no valid offset (a frozen broker answers
OFFSET_INVALID) proves nothing: the deadlines it was for wait (late, never early). Failed
probes are retried after a backoff (``PROBE_BACKOFF_S`` doubling up to ``PROBE_BACKOFF_MAX_S``),
not on every turn of the loop; the first failure of a run and the first answer after it are
logged once each. Probes failing for ``REBUILD_AFTER_S`` (stale metadata after a broker was
frozen or restarted answers FENCED_LEADER_EPOCH on every try) make the probe's admin client
ask for fresh metadata, then be built anew."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sessionwarden.config.settings import TopicNames
from sessionwarden.enforcer.runtime import PartitionRuntime
from sessionwarden.kafka.offsets import AdminLike, Probe
from sessionwarden.ops.logs import error_fields

log = logging.getLogger(__name__)

Parts = dict[int, PartitionRuntime]
PROBE_TIMEOUT_S = 5.0
PROBE_BACKOFF_S = 0.1
PROBE_BACKOFF_MAX_S = 2.0
REBUILD_AFTER_S = 5.0


class Firing:
    def __init__(
        self,
        consumer: Consumer,
        admin: AdminLike,
        topics: TopicNames,
        budget: float,
        batch_size: int,
        clock: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
        admin_factory: Callable[[], AdminLike] | None = None,
    ) -> None:
        """``admin_factory`` builds a new admin client for the probes when theirs keeps
        failing (None: the one given is kept, only its metadata refreshed)."""
        self._consumer = consumer
        self._admin = admin
        self._topics = topics
        self._budget = budget
        self._batch_size = batch_size
        self._clock = clock
        self._monotonic = monotonic
        self._admin_factory = admin_factory
        self.probes_failed = 0
        self.admin_rebuilds = 0
        self._failures = 0  # probes failed in a row
        self._failing_since: float | None = None
        self._retry_at = -float("inf")
        self._repaired_at = -float("inf")  # last metadata refresh or rebuild

    def fire_due(self, parts: Parts, now: float) -> int:
        """End every session whose deadline has passed and whose partition is known to be read
        through it in broker time; then drop expired ended-session markers. Returns the
        sessions ended."""
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
        fired = 0
        for p in due:
            rt = parts[p]
            fired += rt.enforcer.fire_due(rt.clock.horizon(now, budget), now, limit)
        for rt in parts.values():
            rt.enforcer.state.forget_expired(now)
        return fired

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
        if self._monotonic() < self._retry_at:
            return  # backing off after a failure: the deadlines wait
        taken = self._clock()
        tps = [TopicPartition(self._topics.input, p) for p in partitions]
        try:
            probe = Probe(self._admin, tps, taken, PROBE_TIMEOUT_S, earliest=False)
        except KafkaException as exc:
            self._failed(error_fields(exc))
            return
        # The request times out after PROBE_TIMEOUT_S; the wait only guards against a hang.
        if not probe.wait(2 * PROBE_TIMEOUT_S):
            self._failed(error_fields(probe.error) if probe.error else {"error": "timed out"})
            return
        if self._failures:
            self._answered()
        assert probe.ends is not None
        for p, (_, end) in probe.ends.items():
            rt = parts.get(p)
            if rt is not None:
                rt.clock.probed(taken, end, rt.read_to())

    def _failed(self, why: dict[str, Any]) -> None:
        now = self._monotonic()
        self.probes_failed += 1
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = now
            log.warning(
                "last-stable-offset probes failing: due deadlines wait until they answer",
                extra=why,
            )
        else:
            log.debug("last-stable-offset probe failed", extra=why)
        self._retry_at = now + min(PROBE_BACKOFF_S * 2 ** (self._failures - 1), PROBE_BACKOFF_MAX_S)
        if now - max(self._failing_since, self._repaired_at) >= REBUILD_AFTER_S:
            self._repair(now)

    def _repair(self, now: float) -> None:
        """Refresh the admin client's metadata the first time; build a new client the next."""
        first = self._repaired_at < (self._failing_since or now)
        self._repaired_at = now
        if first or self._admin_factory is None:
            (log.info if first else log.debug)(
                "last-stable-offset probes: refreshing metadata",
                extra={"failures": self._failures},
            )
            list_topics = getattr(self._admin, "list_topics", None)
            if list_topics is not None:
                try:
                    list_topics(self._topics.input, timeout=1.0)
                except KafkaException as exc:
                    log.debug("metadata refresh failed", extra=error_fields(exc))
            return
        self.admin_rebuilds += 1
        log.warning(
            "last-stable-offset probes: rebuilding their admin client",
            extra={"failures": self._failures, "rebuilds": self.admin_rebuilds},
        )
        self._admin = self._admin_factory()
        self._retry_at = now  # ask the new client at once

    def _answered(self) -> None:
        since = self._failing_since if self._failing_since is not None else self._monotonic()
        log.warning(
            "last-stable-offset probes answer again",
            extra={"failures": self._failures,
                   "failing_s": round(self._monotonic() - since, 3)},
        )  # fmt: skip
        self._failures = 0
        self._failing_since = None
        self._retry_at = -float("inf")

    def _refresh_positions(self, parts: Parts) -> None:
        tps = [TopicPartition(self._topics.input, p) for p in parts]
        for tp in self._consumer.position(tps):
            if tp.offset >= 0 and tp.partition in parts:
                parts[tp.partition].position = tp.offset
