"""Documents of users gone silent leave memory and the changelog as event time moves on, and a
worker never holds more than its maximum: each removal named in its partition's marker and
deleted after it, so a kill at any point keeps the replay exact (test_replay.py)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from sessionwarden.detect.alerts import CooldownRecord
from sessionwarden.detect.documents import (
    DROP_BASE,
    Marker,
    UserDoc,
    UserStore,
    is_user_key,
    marker_key,
)
from sessionwarden.detect.expiry import Retention
from sessionwarden.detect.tables import EXPIRATIONS, GRANTS, DetectState, apply_writes
from tests.unit.detect.factories import (
    T0,
    Changelog,
    Worker,
    audit_event,
    ended_used,
    high_risk,
    started,
)

SILENT = 400
TICKERS = {0: "ticker-0", 1: "ticker-1"}


def users_in(table: dict[Any, bytes]) -> set[str]:
    return {key[1] for key in table if is_user_key(key)}


def removals_follow_their_marker(changelog: Changelog) -> list[int]:
    """Check each delete of a document comes after a marker of its changelog partition naming
    it, with no write of that document in between; returns how many each marker named."""
    named: list[int] = []
    for log in changelog.logs.values():
        emptied: set[Any] = set()
        for key, value in log:
            if not is_user_key(key):
                marker = Marker.decode(value) if value is not None else None
                emptied = set(marker.emptied) if marker else set()
                named.append(len(emptied))
            elif value is None:
                assert key in emptied, f"{key} deleted without a marker naming it before"
            else:
                emptied.discard(key)
    return named


def test_documents_of_users_gone_silent_are_removed_as_event_time_moves_on() -> None:
    """Ever new user ids would otherwise grow the worker's memory, and its changelog, without
    bound: a user who never comes back kept a document forever."""
    changelog = Changelog()
    worker = Worker(changelog)
    silent = [
        audit_event(ended_used(f"x{i}", "gone", T0 + i * 0.1, reason=None), i % 2, i // 2)
        for i in range(SILENT)
    ]
    worker.judge([silent[i : i + 50] for i in range(0, SILENT, 50)])
    assert SILENT == len(users_in(worker.table))
    held = [SILENT]
    offset = SILENT // 2
    for step in range(1, 20):  # one record per partition and batch, 60 s of event time apart
        t = T0 + 400 + 60 * step
        batch = [
            audit_event(high_risk(user, "none", t), partition, offset + step)
            for partition, user in TICKERS.items()
        ]
        worker.judge([batch])
        held.append(len(users_in(worker.table) - set(TICKERS.values())))
    assert 0 == held[-1], "every silent user's document was removed"
    assert held == sorted(held, reverse=True)
    assert (SILENT, SILENT) == (worker.shell.expired, sum(removals_follow_their_marker(changelog)))
    assert max(removals_follow_their_marker(changelog)) <= DROP_BASE + 2, "bounded per batch"
    assert set() == users_in(changelog.restore()) - set(TICKERS.values()), "tombstones written"


def test_an_expired_document_is_judged_as_empty_whether_it_was_removed_yet_or_not() -> None:
    """Removal may come in any later batch (a budget per batch, kills in between): a record
    must see the same state either way, or a replay after a kill raises other alerts."""
    records = [
        ended_used("alice", "gone", T0, reason=None),  # alert, cooldown starts
        ended_used("alice", "gone", T0 + 10, reason=None),  # withheld by the cooldown
        high_risk("bob", "none", T0 + 1000),  # moves the partition's clock
        ended_used("alice", "gone", T0 + 20, reason=None),  # far later than allowed
    ]
    events = [audit_event(record, 0, offset) for offset, record in enumerate(records)]
    alerts = []
    for batches in ([events], [[e] for e in events]):
        worker = Worker(Changelog())
        worker.judge(batches)
        alerts.append([(a["user_id"], a["suppressed"]) for a in worker.topic.sent])
    assert [("alice", 0), ("alice", 0)] == alerts[0] == alerts[1]


def test_the_clock_that_expires_documents_survives_a_restart() -> None:
    """A worker restarted on the changelog must expire what the one before it did."""
    doc = UserDoc(("acme", "alice"), applied=(0, 3))
    cooldown = CooldownRecord(T0, "high", 1)
    apply_writes(
        doc.tables,
        [DetectState(doc.tables, 60, 120).put_cooldown(doc.user, "ended_session_used", cooldown)],
    )
    table = {doc.user: doc.encode(), marker_key(0): Marker(5, clock=T0 + 1000).encode()}
    retention = Retention({EXPIRATIONS: 60.0, GRANTS: 120.0}, 300.0)
    assert UserDoc(doc.user) == UserStore(table, retention).to_judge(doc.user, (0, 6), T0 + 20)
    del table[marker_key(0)]
    assert doc == UserStore(table, retention).to_judge(doc.user, (0, 6), T0 + 20)


def test_a_worker_at_its_maximum_removes_the_documents_that_expire_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Hostile input (ever new user ids with long sessions) must not grow memory past the
    maximum; the documents removed are those whose state would have gone first anyway."""
    changelog = Changelog()
    worker = Worker(changelog, max_documents=40)
    events = [
        audit_event(started(f"u{i}-s", f"u{i}", T0 + i * 0.01, absolute=1000.0 + i), 0, i)
        for i in range(100)
    ]
    with caplog.at_level(logging.WARNING, logger="sessionwarden.detect.app"):
        for i in range(0, 100, 10):
            worker.judge([events[i : i + 10]])
            assert len(users_in(worker.table)) <= 40
    assert {f"u{i}" for i in range(60, 100)} == users_in(worker.table)
    assert (60, 0) == (worker.shell.evicted, worker.shell.expired)
    assert 60 == sum(removals_follow_their_marker(changelog))
    warnings = [r for r in caplog.records if "at the maximum" in r.getMessage()]
    assert [10] == [r.__dict__["evicted"] for r in warnings], "logged once, then rate-limited"
    assert {f"u{i}" for i in range(60, 100)} == users_in(changelog.restore())


def test_a_restarted_worker_indexes_the_documents_it_restored() -> None:
    """Documents restored from the changelog expire too, not only those written since."""
    changelog = Changelog()
    worker = Worker(changelog)
    worker.judge([[audit_event(ended_used("alice", "gone", T0, reason=None), 0, 0)]])
    restarted = Worker(changelog)
    restarted.judge([[audit_event(high_risk("bob", "none", T0 + 1000), 0, 1)]])
    assert (set(), 1) == (users_in(restarted.table), restarted.shell.expired)
    assert orjson.loads(changelog.logs[0][-2][1])["emptied"] == [["acme", "alice"]]
