"""A topic read in a thread from the beginning (read_committed), every record with the moment it
arrived: what the tests and benchmarks watch the processors' output topics with."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from sessionwarden.kafka.stall import AdminEnds, Stall, StallWatch

CLIENT_ID = "sessionwarden-test-collector"
COLLECTOR_STALL_S = 5.0
"""A Collector whose position has not moved for this long while the topic's end offsets (asked
through an admin client of its own) are ahead of it reopens its consumer at its position
(sessionwarden.kafka.stall). After a frozen broker was thawed, its librdkafka consumer was seen
to stop fetching for good (thread alive, 138 of 260 revocations read, while a fresh
read_committed consumer read all 260), its own watermark queries unanswered as well."""


class Collector:
    """Reads a topic (read_committed) from the beginning in a thread; records arrival times.
    A consumer that stops fetching while records wait for it is reopened where it stood."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.reopened = 0
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._group = f"collector-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = self._open({})
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self, positions: dict[int, int]) -> Consumer:
        self._opened_at = dict(positions)  # where a partition stands until it is read from
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap_servers,
                "group.id": self._group,
                "client.id": CLIENT_ID,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
                "log_level": 3,
            }
        )
        md = consumer.list_topics(self._topic, timeout=10)
        self._partitions = sorted(md.topics[self._topic].partitions)
        consumer.assign(
            [
                TopicPartition(self._topic, p, positions.get(p, OFFSET_BEGINNING))
                for p in self._partitions
            ]
        )
        return consumer

    def _run(self) -> None:
        watch = StallWatch(
            COLLECTOR_STALL_S,
            AdminEnds.of({"bootstrap.servers": self._bootstrap_servers, "log_level": 3}),
            fallback=lambda: {(self._topic, p): o for p, o in self._opened_at.items()},
        )
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.05):
                if msg.error() is None and msg.value() is not None:
                    with self._lock:
                        self.records.append((time.time(), orjson.loads(msg.value())))
            watch.tend(self._consumer, self._reopen, "a test collector stopped fetching: reopened")
        self._consumer.close()

    def _reopen(self, stall: Stall) -> None:
        positions = {p: o for (_, p), o in stall.positions.items() if o >= 0}
        stuck, self._consumer = self._consumer, self._open(positions)
        stuck.close()
        self.reopened += 1
        print(
            f"collector of {self._topic}: no progress for {stall.still_s:.1f} s behind the "
            f"end offsets {stall.fields()['ends']}; reopened at {positions}"
        )

    def docs(self, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [d for _, d in self.records if all(d.get(k) == v for k, v in match.items())]

    def timed(self, **match: Any) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(t, d) for t, d in self.records if all(d.get(k) == v for k, v in match.items())]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
