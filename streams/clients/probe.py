"""The listener's freshness question: where do the partitions begin and end right now?"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from typing import Any, Protocol

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from streams.logsetup import error_fields

log = logging.getLogger(__name__)


class AdminLike(Protocol):
    """The part of confluent_kafka.admin.AdminClient the listener uses (tests pass a fake)."""

    def list_offsets(
        self, topic_partition_offsets: dict[TopicPartition, OffsetSpec], **kwargs: Any
    ) -> dict[TopicPartition, concurrent.futures.Future[Any]]: ...


class Probe:
    """One question to the broker, "where do the partitions begin and end now?", asked on the
    admin client's own connection: it neither blocks the listener nor queues behind fetches."""

    def __init__(
        self, admin: AdminLike, tps: list[TopicPartition], taken_at: float, timeout: float
    ):
        self.taken_at = taken_at  # monotonic, before the question was sent
        self.ends: dict[int, tuple[int, int]] | None = None  # partition -> (low, end)
        ask = functools.partial(
            admin.list_offsets,
            isolation_level=IsolationLevel.READ_COMMITTED,  # end = the last stable offset
            request_timeout=timeout,
        )
        self._low = ask({tp: OffsetSpec.earliest() for tp in tps})
        self._end = ask({tp: OffsetSpec.latest() for tp in tps})

    def _futures(self) -> list[concurrent.futures.Future[Any]]:
        return [*self._low.values(), *self._end.values()]

    def wait(self, timeout: float) -> bool:
        concurrent.futures.wait(self._futures(), timeout)
        return self.answer() is True

    def answer(self) -> bool | None:
        """True once answered (``ends`` is set), False if it failed, None while pending."""
        if self.ends is not None:
            return True
        if not all(future.done() for future in self._futures()):
            return None
        try:
            low = {tp.partition: future.result().offset for tp, future in self._low.items()}
            end = {tp.partition: future.result().offset for tp, future in self._end.items()}
        except KafkaException as exc:
            log.debug("end offsets unavailable", extra=error_fields(exc))
            return False
        self.ends = {p: (low[p], end[p]) for p in end}
        return True


def caught_up(ends: dict[int, tuple[int, int]], positions: dict[int, int]) -> bool:
    """Read up to the end offsets on every partition (an empty partition counts)."""
    for partition, (low, end) in ends.items():
        if end > low and positions.get(partition, -1) < end:
            return False
    return True
