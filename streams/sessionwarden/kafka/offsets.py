"""Offsets asked of the broker: the probe of probe-then-catch-up (sessionwarden/freshness.py),
where do partitions end now, and a consumer group's lag."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import time
from typing import Any, Protocol

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from sessionwarden.ops.logs import error_fields

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
        """True once answered (``ends`` is set), False if it failed, None while pending.

        It failed when any partition's answer is an error or no valid offset: a frozen broker
        makes librdkafka answer OFFSET_INVALID (-1001) for every partition instead of raising,
        and a caller that took that for an end offset would think itself caught up."""
        if self.ends is not None:
            return True
        if self.error is not None:
            return False
        if not all(future.done() for future in self._futures()):
            return None
        try:
            low = {tp.partition: valid_offset(tp, future) for tp, future in self._low.items()}
            end = {tp.partition: valid_offset(tp, future) for tp, future in self._end.items()}
        except KafkaException as exc:
            log.debug("end offsets unavailable", extra=error_fields(exc))
            self.error = exc
            return False
        self.ends = {p: (low.get(p, 0), end[p]) for p in end}
        return True


def valid_offset(tp: TopicPartition, future: concurrent.futures.Future[Any]) -> int:
    """The offset a ``list_offsets`` future answered for ``tp``; KafkaException (retriable for
    an invalid offset) for an error or an invalid offset, which is never an end."""
    try:
        offset = int(future.result().offset)
    except KafkaException:
        raise
    except Exception as exc:  # a cancelled future, an answer of an unexpected shape
        why = f"partition {tp.partition}: {exc!r}"
        raise KafkaException(KafkaError(KafkaError._FAIL, why)) from exc
    if offset < 0:
        raise KafkaException(
            KafkaError(
                KafkaError._NO_OFFSET,
                f"partition {tp.partition}: no valid offset ({offset})",
                retriable=True,
            )
        )
    return offset


COORDINATOR_MOVING = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}
"""Answers of a group coordinator that is being elected, moved or loaded: ask again."""


class GroupOffsets:
    """A consumer group's committed offsets, asked through a consumer configured as that group
    that never joins it (it neither subscribes nor commits).

    Not ``AdminClient.list_consumer_group_offsets``: when the group coordinator answers that
    request with NOT_COORDINATOR, as a broker does while its offsets topic is still loading,
    librdkafka 2.x hands the retry to a consumer-group handle an admin client does not have,
    and the whole process dies of a segmentation fault (librdkafka issue 5040). A consumer has
    that handle and looks the coordinator up again."""

    def __init__(self, client_config: dict[str, Any], group: str) -> None:
        self.group = group
        self._consumer = Consumer({
            **client_config, "group.id": group,
            "enable.auto.commit": False, "enable.auto.offset.store": False,
        })  # fmt: skip

    def committed(self, tps: list[TopicPartition], timeout: float) -> dict[int, int]:
        """partition -> committed offset (negative where the group never committed). A
        coordinator still moving or loading is asked again until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                done = self._consumer.committed(tps, timeout=max(0.1, deadline - time.monotonic()))
                failed = [tp.error for tp in done if tp.error is not None]
                if failed:
                    raise KafkaException(failed[0])
                return {tp.partition: tp.offset for tp in done}
            except KafkaException as exc:
                if exc.args[0].code() not in COORDINATOR_MOVING or time.monotonic() >= deadline:
                    raise
            time.sleep(0.1)

    def close(self) -> None:
        self._consumer.close()


def group_lag(
    admin: AdminLike, offsets: GroupOffsets, tps: list[TopicPartition], timeout: float = 5.0
) -> int:
    """Records of the partitions ``tps`` that ``offsets.group`` has not committed yet, up to the
    last stable offsets; a partition the group never committed counts from its first record."""
    committed = offsets.committed(tps, timeout)
    probe = Probe(admin, tps, taken_at=0.0, timeout=timeout)
    if not probe.wait(timeout) or probe.ends is None:
        raise probe.error or KafkaException(f"no end offsets within {timeout}s")
    return sum(max(0, end - max(low, committed.get(p, -1))) for p, (low, end) in probe.ends.items())
