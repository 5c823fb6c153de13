"""The dashboard's reader applies records one at a time: a bad one is counted and logged with
its position and reason, and never costs the rest of its batch."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.kafka.stall import Ends, Stall
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.web.dashboard.feed import DashboardFeed, RecordApplier
from sessionwarden.web.dashboard.view import DashboardState
from tests.unit.stall_fakes import EndsAdmin, ends_of
from tests.unit.web.test_dashboard_state import T0, alert_doc, revoked

ALERTS, REVOCATIONS, AUDIT = "t.alerts", "t.revocations", "t.audit"


class Msg:
    def __init__(self, topic: str, value: bytes | None, offset: int) -> None:
        self._topic, self._value, self._offset = topic, value, offset

    def error(self) -> None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def applier(state: DashboardState, clock: list[float]) -> RecordApplier:
    stats = {"records": 0, "records_skipped": 0, "feed_errors": 0}
    apply = {
        REVOCATIONS: state.apply_revocation,
        AUDIT: state.apply_audit,
        ALERTS: state.apply_alert,
    }
    return RecordApplier(apply, stats, ALERTS, clock=lambda: clock[0])


def batch(*records: tuple[str, Any]) -> list[Msg]:
    return [
        Msg(topic, value if isinstance(value, bytes) else orjson.dumps(value), offset)
        for offset, (topic, value) in enumerate(records)
    ]


def test_a_bad_alert_in_a_batch_costs_nothing_but_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """evidence.session_ids a number used to end the batch: every later record was lost."""
    state = DashboardState(show_session=SessionHasher("salt"))
    records = applier(state, [0.0])
    records.apply(
        batch(
            (ALERTS, alert_doc("alice", T0)),
            (ALERTS, alert_doc("mallory", T0, evidence__session_ids=5)),
            (ALERTS, alert_doc("mallory", T0, evidence__roles="admin")),
            (REVOCATIONS, revoked("s-2", "logout", T0, T0)),
            (ALERTS, b"\xff not json"),
            (ALERTS, alert_doc("bob", T0 + 1)),
        ),
        T0 + 2,
    )

    snap = state.snapshot(T0 + 2)

    assert ["bob", "alice"] == [a["user_id"] for a in snap["alerts"]]
    assert 1 == len(snap["recent"])
    assert {"records": 3, "records_skipped": 3, "feed_errors": 0} == records.stats
    [line] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (ALERTS, 1) == (line.__dict__["topic"], line.__dict__["offset"])
    assert "invalid: evidence.session_ids: Input should be a valid list" == line.__dict__["reason"]


def test_skipped_records_are_logged_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood of bad alerts must not flood the dashboard's log; the count is kept."""
    state = DashboardState(show_session=SessionHasher("salt"))
    clock = [100.0]
    records = applier(state, clock)
    bad = (ALERTS, alert_doc("mallory", T0, severity="urgent"))
    records.apply(batch(*[bad] * 50), T0)
    clock[0] += 10.0
    records.apply(batch(bad), T0)

    lines = [r for r in caplog.records if r.levelno == logging.WARNING]

    assert 51 == records.stats["records_skipped"]
    assert [0, 49] == [r.__dict__["skipped_unlogged"] for r in lines]
    assert all("mallory" not in str(vars(r)) for r in lines), "the content is never logged"


def test_a_feed_whose_consumer_stopped_is_reopened_where_it_stood() -> None:
    """The new consumer is assigned at the positions (the next records to apply), and at the
    beginning where nothing was read yet: nothing is applied twice, nothing skipped."""
    settings = Settings(bootstrap_servers="127.0.0.1:1")  # never asked: assign() is local
    state = DashboardState(show_session=SessionHasher("salt"))
    feed = DashboardFeed(settings, state, threading.Lock(), lambda: None, "detect")
    stuck = feed._consumer
    t = settings.topics
    stood = {(t.revocations, 0): 40, (t.audit, 1): 7, (t.alerts, 0): -1001}
    feed._reopen(Stall(12.0, stood, {(t.revocations, 0): Ends(0, 90)}))
    try:
        assert feed._consumer is not stuck
        assert feed.stats["consumer_reopens"] == 1
        at = {(tp.topic, tp.partition): tp.offset for tp in feed._consumer.assignment()}
        assert at == {**stood, (t.alerts, 0): OFFSET_BEGINNING}
    finally:
        feed._consumer.close()
        for offsets in feed._offsets.values():
            offsets.close()


class Stopped:
    """The reopened consumer as the watch probes it: nothing read yet from two partitions."""

    def __init__(self, positions: dict[tuple[str, int], int]) -> None:
        self.positions = positions

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self.positions)]

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.topic, tp.partition])
                for tp in tps]  # fmt: skip


def test_a_reopened_feed_counts_an_unread_partition_from_where_it_was_put() -> None:
    """After a reopen, a partition not read from since has no position: it stands where the
    reopen assigned it, so an idle feed is not reopened again (nor sent back to the start)."""
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    state = DashboardState(show_session=SessionHasher("salt"))
    feed = DashboardFeed(settings, state, threading.Lock(), lambda: None, "detect")
    t = settings.topics
    stood = {(t.revocations, 0): 40, (t.audit, 1): 7, (t.alerts, 0): -1001}
    feed._reopen(Stall(12.0, stood, {}))
    now = [time.monotonic() + 1]
    feed._watch.clock = lambda: now[0]
    idle = Stopped({(t.revocations, 0): 41, (t.audit, 1): -1001, (t.alerts, 0): -1001})
    ends = {(t.revocations, 0): 41, (t.audit, 1): 7, (t.alerts, 0): 0}
    feed._watch.ends = ends_of(EndsAdmin(lambda tp: ends[tp.topic, tp.partition]))
    try:
        for _ in range(60):
            now[0] += 1
            assert feed._watch.check(idle) is None
        ends[t.audit, 1] = 9  # records past where it was put: a stall
        asked = []
        for _ in range(30):
            now[0] += 1
            asked.append(feed._watch.check(idle))
        stall = next(s for s in asked if s is not None)
        assert stall.positions[t.audit, 1] == 7
    finally:
        feed._consumer.close()
        for offsets in feed._offsets.values():
            offsets.close()
