"""The listener's staleness: probe the end offsets every interval, note when they are reached."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaException, TopicPartition

from streams.freshness import caught_up
from streams.logsetup import error_fields
from streams.offsets import AdminLike, Probe

log = logging.getLogger(__name__)


class Staleness:
    """Asks "where do the partitions end?" every ``interval`` seconds (never two questions at
    once) and notes, once the reader has read that far, the monotonic time the question was
    asked: everything produced before it has then been applied."""

    def __init__(
        self,
        admin: AdminLike,
        topic: str,
        interval: float,
        timeout: float,
        monotonic: Callable[[], float],
        on_failure: Callable[[], None],
    ) -> None:
        self._admin = admin
        self._topic = topic
        self._interval = interval
        self._timeout = timeout
        self._monotonic = monotonic
        self._on_failure = on_failure
        self._tps: list[TopicPartition] = []
        self._probe: Probe | None = None
        self._last_probe = -float("inf")
        self.fresh_as_of: float | None = None  # monotonic time everything before was applied

    def first(self, tps: list[TopicPartition], timeout: float) -> bool:
        """Ask for the ends of ``tps`` and wait up to ``timeout`` for the answer."""
        self._tps = tps
        self._last_probe = self._monotonic()
        self._probe = self._ask(self._last_probe)
        return self._probe is not None and self._probe.wait(timeout)

    def age(self) -> float:
        """Seconds since everything was last known applied (inf: never)."""
        if self.fresh_as_of is None:
            return float("inf")
        return max(0.0, self._monotonic() - self.fresh_as_of)

    def check(self, positions: Callable[[list[TopicPartition]], list[TopicPartition]]) -> bool:
        """Ask when due, take an answer when there is one; True when the reader (``positions``
        of the consumer) has just been found caught up."""
        now = self._monotonic()
        probe = self._probe
        if probe is None:
            if now - self._last_probe < self._interval:
                return False
            self._last_probe = now  # a failed probe is retried after the interval
            probe = self._probe = self._ask(now)
            if probe is None:
                return False
        answered = probe.answer()
        if not answered:
            if answered is False or now - probe.taken_at > self._timeout:
                self._on_failure()
                self._probe = None
            return False
        assert probe.ends is not None
        if not caught_up(probe.ends, {tp.partition: tp.offset for tp in positions(self._tps)}):
            return False
        self.fresh_as_of = probe.taken_at
        self._probe = None
        return True

    def _ask(self, now: float) -> Probe | None:
        try:
            return Probe(self._admin, self._tps, now, self._timeout)
        except KafkaException as exc:
            self._on_failure()
            log.debug(
                "cannot ask for the end offsets", extra={"topic": self._topic, **error_fields(exc)}
            )
            return None
