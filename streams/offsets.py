"""The probe of probe-then-catch-up (streams/freshness.py): where do partitions end now?"""

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
    """The part of confluent_kafka.admin.AdminClient a probe uses (tests pass a fake)."""

    def list_offsets(
        self, topic_partition_offsets: dict[TopicPartition, OffsetSpec], **kwargs: Any
    ) -> dict[TopicPartition, concurrent.futures.Future[Any]]: ...


class Probe:
    """One question to the broker, "where do the partitions begin and end now?", asked on the
    admin client's own connection: it neither blocks the reader nor queues behind its fetches.
    ``earliest=False`` asks only for the ends (the beginnings then count as 0)."""

    def __init__(
        self,
        admin: AdminLike,
        tps: list[TopicPartition],
        taken_at: float,
        timeout: float,
        earliest: bool = True,
    ):
        self.taken_at = taken_at  # the reader's clock, before the question was sent
        self.ends: dict[int, tuple[int, int]] | None = None  # partition -> (low, end)
        self.error: KafkaException | None = None
        ask = functools.partial(
            admin.list_offsets,
            isolation_level=IsolationLevel.READ_COMMITTED,  # end = the last stable offset
            request_timeout=timeout,
        )
        self._low = ask({tp: OffsetSpec.earliest() for tp in tps}) if earliest else {}
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
            self.error = exc
            return False
        self.ends = {p: (low.get(p, 0), end[p]) for p in end}
        return True
