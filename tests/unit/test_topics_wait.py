"""Waiting for a new topic's configs: a broker that does not know the topic yet is waited out,
any other error is not."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from sessionwarden.kafka.topics import TopicSpec, _wait_aligned

SPEC = TopicSpec("t", 3, 3, {"cleanup.policy": "compact"})


class Admin:
    """describe_configs answers ``errors`` first (one a call), then the spec's configs."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.calls = 0

    def describe_configs(self, resources: list[Any]) -> dict[Any, Future[Any]]:
        self.calls += 1
        answer: Future[Any] = Future()
        if self.errors:
            answer.set_exception(KafkaException(KafkaError(self.errors.pop(0))))
        else:
            answer.set_result({"cleanup.policy": SimpleNamespace(value="compact")})
        return {resources[0]: answer}


def test_a_broker_that_does_not_know_the_new_topic_yet_is_waited_out() -> None:
    admin = Admin(KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.UNKNOWN_TOPIC_OR_PART)
    _wait_aligned(admin, SPEC, timeout=5)  # type: ignore[arg-type]
    assert admin.calls == 3


def test_an_unknown_topic_past_the_deadline_is_raised() -> None:
    admin = Admin(*[KafkaError.UNKNOWN_TOPIC_OR_PART] * 1000)
    with pytest.raises(KafkaException):
        _wait_aligned(admin, SPEC, timeout=0.2)  # type: ignore[arg-type]


def test_any_other_error_is_raised_at_once() -> None:
    admin = Admin(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        _wait_aligned(admin, SPEC, timeout=5)  # type: ignore[arg-type]
    assert admin.calls == 1
