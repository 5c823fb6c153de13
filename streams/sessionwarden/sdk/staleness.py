"""The listener's staleness: probe the end offsets every interval, note when they are reached.

A probe that is not answered in time, fails, or answers with no valid offset (a frozen broker's
OFFSET_INVALID) is a failed probe: the listener knows nothing new, so its staleness keeps
growing until a later probe answers and is reached. Failed probes are retried with a backoff,
and the listener is told how long they have been failing (it rebuilds its clients on that).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from sessionwarden.freshness import caught_up
from sessionwarden.kafka.offsets import AdminLike, Probe
from sessionwarden.ops.logs import error_fields

# The listener's own lines, under its logger: operators filter and alert on that name.
log = logging.getLogger("sessionwarden.sdk.listener")

FIRST_RETRY_S = 0.2
"""Pause between first probes that failed, while the listener starts."""


class Staleness:
    """Asks "where do the partitions end?" every ``interval`` seconds (never two questions at
    once) and notes, once the reader has read that far, the monotonic time the question was
    asked: everything produced before it has then been applied.

    After a failed probe the next one waits ``interval``, doubling with each failure in a row
    up to ``max_backoff``. The first failure of a run and the first answer after it are
    logged, once each."""

    def __init__(
        self,
        admin: AdminLike,
        topic: str,
        interval: float,
        timeout: float,
        monotonic: Callable[[], float],
        on_failure: Callable[[], None],
        max_backoff: float | None = None,
    ) -> None:
        self._admin = admin
        self._topic = topic
        self._interval = interval
        self._timeout = timeout
        self._max_backoff = max(interval, max_backoff if max_backoff is not None else interval)
        self._monotonic = monotonic
        self._on_failure = on_failure
        self._tps: list[TopicPartition] = []
        self._probe: Probe | None = None
        self._next_probe = -float("inf")
        self.fresh_as_of: float | None = None  # monotonic time everything before was applied
        self.failures = 0  # probes failed in a row
        self.failing_since: float | None = None  # when the first of them was asked
        self.behind_since: float | None = None  # an answered probe not reached yet, since

    def first(self, tps: list[TopicPartition], timeout: float) -> bool:
        """Ask for the ends of ``tps`` and wait up to ``timeout`` (real seconds) for an answer.
        A probe that fails is asked again until then: a topic created a moment ago may have no
        partition leader yet, and that is no reason to give up at once."""
        self._tps = tps
        give_up = time.monotonic() + timeout
        while True:
            now = self._monotonic()
            self._next_probe = now + self._interval
            self._probe = self._ask(now)
            left = give_up - time.monotonic()
            if self._probe is not None and self._probe.wait(max(0.0, left)):
                return True
            left = give_up - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(FIRST_RETRY_S, left))

    def age(self) -> float:
        """Seconds since everything was last known applied (inf: never)."""
        if self.fresh_as_of is None:
            return float("inf")
        return max(0.0, self._monotonic() - self.fresh_as_of)

    def replace_admin(self, admin: AdminLike) -> None:
        """Ask through ``admin`` from now on, at once; a question pending on the old one is
        dropped (its answer would come from the client being replaced)."""
        self._admin = admin
        self._probe = None
        self._next_probe = -float("inf")

    def check(self, positions: Callable[[list[TopicPartition]], list[TopicPartition]]) -> bool:
        """Ask when due, take an answer when there is one; True when the reader (``positions``
        of the consumer) has just been found caught up."""
        now = self._monotonic()
        probe = self._probe
        if probe is None:
            if now < self._next_probe:
                return False
            self._next_probe = now + self._interval
            probe = self._probe = self._ask(now)
            if probe is None:
                return False
        answered = probe.answer()
        if not answered:
            if answered is False or now - probe.taken_at > self._timeout:
                why: dict[str, Any] = (
                    error_fields(probe.error) if probe.error else {"error": "timed out"}
                )
                self._failed(probe.taken_at, now, why)
            return False
        if self.failures:
            self._answered(now)
        assert probe.ends is not None
        if not caught_up(probe.ends, {tp.partition: tp.offset for tp in positions(self._tps)}):
            if self.behind_since is None:
                self.behind_since = now
            return False
        self.fresh_as_of = probe.taken_at
        self.behind_since = None
        self._probe = None
        return True

    def _ask(self, now: float) -> Probe | None:
        try:
            return Probe(self._admin, self._tps, now, self._timeout)
        except KafkaException as exc:
            self._failed(now, now, error_fields(exc))
            return None

    def _failed(self, asked: float, now: float, why: dict[str, Any]) -> None:
        self._on_failure()
        self._probe = None
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = asked
            log.warning(
                "end-offset probes failing: the listener learns nothing new until they answer",
                extra={"topic": self._topic, **why},
            )
        else:
            log.debug("end-offset probe failed", extra={"topic": self._topic, **why})
        backoff = min(self._interval * 2 ** (self.failures - 1), self._max_backoff)
        self._next_probe = now + backoff

    def _answered(self, now: float) -> None:
        since = self.failing_since if self.failing_since is not None else now
        log.warning(
            "end-offset probes answer again",
            extra={"topic": self._topic, "failed_probes": self.failures,
                   "failing_s": round(now - since, 3)},
        )  # fmt: skip
        self.failures = 0
        self.failing_since = None
