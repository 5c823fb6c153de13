"""A worker killed at any point and restarted raises the alerts of a run that was never killed.

The fake changelog keeps every state write in the order it was sent, one log per changelog
partition (Kafka orders a producer's records only within a partition). A kill keeps a prefix of
each log, at least what was written before the last commit of input offsets (faust flushes the
producer before it commits); the restarted worker restores its state from those prefixes and
reads every partition again from its committed offset."""

from __future__ import annotations

import random
import zlib
from typing import Any

import orjson
import pytest

from tests.unit.detect.factories import (
    Changelog,
    Worker,
    audit_event,
    ended_used,
    lifecycle,
    started,
)

PARTITIONS = 2
QUIET_S = 900.0
"""Past the policy's cooldown (300 s) plus the lateness allowed (its longest window, 120 s)."""


def audit_stream(seed: int) -> list[Any]:
    """The seed's lifecycle records as audit events, users spread over the partitions: two
    stretches of the same users a quiet spell apart (long enough for most of their documents
    to expire), and users seen once among them (whose documents expire within a stretch), so
    documents are swept between kills and users come back after theirs expired; and records
    of the first stretch's times among the second's."""
    rng = random.Random(seed)
    first = lifecycle(seed, users=6, length=100)
    resume = first[-1].occurred_at.timestamp() + QUIET_S
    records: list[Any] = []
    for n, record in enumerate(first + lifecycle(seed + 1, 6, 100, resume, sessions="b-")):
        records.append(record)
        t = record.occurred_at.timestamp()
        if n % 4 == 1:
            records.append(ended_used(f"x{n}", "gone", t, reason=rng.choice(("logout", None))))
        elif n % 4 == 3:
            records.append(started(f"y{n}-s", f"y{n}", t, absolute=30.0))
        if n >= len(first) and n % 10 == 5:  # far later than allowed: judged on no state
            late = first[n - len(first)]
            records.append(ended_used(late.user_id, "gone", late.occurred_at.timestamp()))
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    events = []
    for record in records:
        partition = zlib.crc32(record.user_id.encode()) % PARTITIONS
        events.append(audit_event(record, partition, offsets[partition]))
        offsets[partition] += 1
    return events


def batches_of(events: list[Any], rng: random.Random) -> list[list[Any]]:
    out = []
    i = 0
    while i < len(events):
        n = rng.choice((1, 2, 3, 7, 20))
        out.append(events[i : i + n])
        i += n
    return out


def comparable(alert: dict[str, Any]) -> tuple[str, bytes]:
    """An alert as subscribers see it; emitted_at is the wall clock of the judging process."""
    return alert["alert_id"], orjson.dumps({k: v for k, v in alert.items() if k != "emitted_at"})


def undisturbed(events: list[Any]) -> dict[str, bytes]:
    worker = Worker(Changelog())
    worker.judge(batches_of(events, random.Random(0)))
    alerts = dict(comparable(a) for a in worker.topic.sent)
    assert len(alerts) == len(worker.topic.sent), "one alert per trigger when nothing fails"
    return alerts


def with_kills(
    events: list[Any], rng: random.Random, kills: int
) -> tuple[list[dict[str, Any]], int, int]:
    """Run over ``events``, killed ``kills`` times at random points, each time restarted from
    the committed offsets on the state restored from what reached the changelog; returns the
    alerts sent, how many records were found judged already and how many documents expired
    (and were removed) in the runs that were killed."""
    changelog = Changelog()
    committed = dict.fromkeys(range(PARTITIONS), 0)
    at_commit: dict[int, int] = {}
    sent: list[dict[str, Any]] = []
    replayed = swept = 0

    def commit_now_and_then(batch: list[Any]) -> None:
        if rng.random() < 0.2:  # faust flushed the producer, then committed
            for e in batch:
                p = e.message.partition
                committed[p] = max(committed[p], e.message.offset + 1)
            at_commit.update(changelog.lengths())

    for run in range(kills + 1):
        worker = Worker(changelog)
        todo = [e for e in events if e.message.offset >= committed[e.message.partition]]
        batches = batches_of(todo, rng)
        last = rng.randrange(len(batches)) if run < kills else len(batches) - 1
        worker.judge(batches[: last + 1], commit_now_and_then)
        sent.extend(worker.topic.sent)
        replayed += worker.shell.replayed
        if run < kills:  # SIGKILL: each partition keeps what it got since the last commit, or more
            swept += worker.shell.expired
            changelog.cut(
                {p: rng.randint(at_commit.get(p, 0), n) for p, n in changelog.lengths().items()}
            )
    return sent, replayed, swept


@pytest.mark.parametrize("seed", range(12))
def test_a_killed_and_restarted_worker_alerts_as_one_never_killed(seed: int) -> None:
    """Records after the last commit are judged again after a kill: against the state as of
    before them, never against state that already holds them or records after them (a missed
    alert, another severity or count, or an alert no undisturbed run raises)."""
    events = audit_stream(seed)
    expected = undisturbed(events)
    assert len(expected) >= 5, "the stream makes the detectors fire"
    rng = random.Random(seed)
    replayed = swept = 0
    for _ in range(4):
        sent, skipped, expired = with_kills(events, rng, kills=rng.randint(1, 3))
        replayed += skipped
        swept += expired
        got: dict[str, set[bytes]] = {}
        for alert in sent:
            alert_id, body = comparable(alert)
            got.setdefault(alert_id, set()).add(body)
        assert {k: {v} for k, v in expected.items()} == got
    assert replayed > 0, "records judged before a kill were read again"
    assert swept > 0, "documents expired and were removed before a kill"
