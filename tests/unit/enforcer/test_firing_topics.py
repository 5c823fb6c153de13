"""Firing asks the broker about the loop's input topic as it is named now, not at construction
(the enforcer benchmark points a built loop at a shared, pre-filled input)."""

from __future__ import annotations

import concurrent.futures
from types import SimpleNamespace
from typing import Any

from confluent_kafka import TopicPartition

from sessionwarden.config.settings import TopicNames
from sessionwarden.enforcer.firing import Firing


class RecordingAdmin:
    def __init__(self) -> None:
        self.asked: list[TopicPartition] = []

    def list_offsets(self, specs: dict[TopicPartition, Any], **_: Any) -> dict[Any, Any]:
        self.asked.extend(specs)
        answered: concurrent.futures.Future[Any] = concurrent.futures.Future()
        answered.set_result(SimpleNamespace(offset=5))
        return {tp: answered for tp in specs}


def test_a_probe_names_the_input_topic_the_loop_reads_now() -> None:
    topics = TopicNames("fresh.", input="shared.auth.events")
    admin = RecordingAdmin()
    firing = Firing(None, admin, topics, 2.0, 100, lambda: 0.0)  # type: ignore[arg-type]
    firing.probe({}, [0, 2])
    assert [("shared.auth.events", 0), ("shared.auth.events", 2)] == [
        (tp.topic, tp.partition) for tp in admin.asked
    ]
