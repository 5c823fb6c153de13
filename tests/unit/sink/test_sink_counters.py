"""The sink's counters as a scrape sees them: every counter of a batch moves at once, so no
scrape finds its rows counted and its records not (the scrape runs in another thread, at any
moment, for instance while the batch's sessions are being cut off)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.policy import default_policy
from sessionwarden.sink.postgres.consumer import PostgresSink
from sessionwarden.sink.postgres.plan import Batch
from tests.unit.sdk.fakes import FakeMessage, revocation


class ScrapingStore:
    """A RevocationStore that takes the counters, as a scrape would, while it works."""

    def __init__(self, sink: PostgresSink) -> None:
        self.sink = sink
        self.scrapes: list[dict[str, float]] = []
        self.refused_signals = 0

    def scrape(self) -> None:
        registry = self.sink.metrics.registry
        self.scrapes.append(
            {
                key: registry.get_sample_value(f"sessionwarden_sink_{key}_total") or 0.0
                for key in ("records", "rows", "cut_off")
            }
        )

    def offsets(self, partitions: Any) -> dict[int, int]:
        return {p: 0 for p in partitions}

    def write(
        self, batch: Batch, seen: dict[int, int], ends: Any = None, positions: Any = None
    ) -> int:
        self.scrape()
        return 0

    def release(self, positions: Any) -> int:
        return 0

    def cut_off(self, tags: list[str], terminate_all: bool) -> tuple[int, int]:
        self.scrape()
        self.sink.stop()
        return 1, 0

    def prune(self, now: object) -> int:
        return 0


class OneBatchConsumer:
    def __init__(self, messages: list[FakeMessage]) -> None:
        self.messages = messages

    def poll(self, timeout: float) -> FakeMessage | None:
        return self.messages.pop(0) if self.messages else None

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        taken, self.messages = self.messages[:n], self.messages[n:]
        return taken

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return partitions


def test_a_scrape_during_a_batch_sees_all_of_its_counters_or_none() -> None:
    sink = PostgresSink(Settings(pg_cut_off=True), default_policy())
    store = ScrapingStore(sink)
    sink._store = store  # type: ignore[assignment]
    sink._consumer = OneBatchConsumer(  # type: ignore[assignment]
        [FakeMessage(encode(revocation(f"s{i}", 0, "logout")), 0, i) for i in range(3)]
    )
    sink.seen = {0: 0}
    sink._loop()
    assert store.scrapes, "the batch was never written"
    for seen in store.scrapes:
        moved = (seen["records"] > 0, seen["rows"] > 0)
        assert moved in {(False, False), (True, True)}, seen
    assert (3, 3, 1) == (sink.stats["records"], sink.stats["rows"], sink.stats["cut_off"])
