"""The end-offset probe: every answer that is not a valid offset is a failure, never an end."""

from __future__ import annotations

import concurrent.futures
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sessionwarden.kafka.offsets import Probe, group_lag

INVALID = -1001


class Admin:
    """Answers each partition with an offset, an error code, or nothing (None: pending)."""

    def __init__(self, answers: dict[int, int | KafkaError | None]) -> None:
        self.answers = answers

    def list_offsets(self, specs: dict[TopicPartition, Any], **_: Any) -> dict[Any, Any]:
        out: dict[Any, concurrent.futures.Future[Any]] = {}
        for tp in specs:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            answer = self.answers[tp.partition]
            if isinstance(answer, KafkaError):
                future.set_exception(KafkaException(answer))
            elif answer is not None:
                future.set_result(SimpleNamespace(offset=answer))
            out[tp] = future
        return out


TPS = [TopicPartition("t", 0), TopicPartition("t", 1)]


def test_a_valid_answer_gives_the_ends() -> None:
    probe = Probe(Admin({0: 3, 1: 0}), TPS, 0.0, 1.0, earliest=False)
    assert (True, {0: (0, 3), 1: (0, 0)}) == (probe.answer(), probe.ends)


@pytest.mark.parametrize("bad", [INVALID, -1, KafkaError(KafkaError.FENCED_LEADER_EPOCH)])
def test_an_invalid_offset_or_a_partition_error_fails_the_probe(bad: Any) -> None:
    """OFFSET_INVALID is what a frozen broker answers; it is no end offset."""
    probe = Probe(Admin({0: 3, 1: bad}), TPS, 0.0, 1.0)
    assert (False, None) == (probe.answer(), probe.ends)
    assert probe.error is not None


def test_an_unanswered_probe_is_pending_then_not_answered() -> None:
    probe = Probe(Admin({0: 3, 1: None}), TPS, 0.0, 1.0)
    assert (None, False) == (probe.answer(), probe.wait(0.01))


class Committed:
    group = "g"

    def committed(self, tps: list[TopicPartition], timeout: float) -> dict[int, int]:
        return {0: 3, 1: 0}


def test_group_lag_is_unknown_never_zero_when_the_ends_are_invalid() -> None:
    """A dashboard showing lag 0 for a frozen broker says "all caught up" when nothing is known."""
    with pytest.raises(KafkaException):
        group_lag(Admin({0: INVALID, 1: INVALID}), Committed(), TPS, timeout=0.1)  # type: ignore[arg-type]
