"""Local snapshots: a snapshot plus the changelog after it restores what the whole changelog
does, and any snapshot that does not fit is refused (the shell then restores in full)."""

from __future__ import annotations

import logging
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from sessionwarden.config.settings import TopicNames
from sessionwarden.enforcer.batch import Batch, TxnCalls
from sessionwarden.enforcer.checkpoints import Checkpoints, Facts
from sessionwarden.enforcer.context import EnforcerContext
from sessionwarden.enforcer.engine import snapshot
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.horizon import PartitionClock
from sessionwarden.enforcer.engine.snapshot import Expect, Header, SnapshotError
from sessionwarden.enforcer.runtime import PartitionRuntime
from sessionwarden.enforcer.txn import TxnFailure
from tests.unit.enforcer.factories import (
    T0,
    activity,
    login,
    logout,
    policy,
    role_change,
)
from tests.unit.enforcer.harness import SETTINGS, FireAt, Harness, RecordingProducer

TOPIC = "p.sessionwarden.enforcer-state"
FACTS = Facts("cluster-a", "topic-a", 3600.0)


def _history(batches_run: int = 8) -> tuple[Harness, list[int]]:
    """A partition's batches (logins, activity, logouts, role changes, deadlines, forgotten
    markers) and the changelog length after each one."""
    h = Harness()
    ends = []
    batches: list[Any] = [
        lambda: h.feed(*(login(0, f"s{i}", user=f"u{i % 3}") for i in range(6))),
        lambda: h.feed(activity(5, "s1", user="u1"), logout(6, "s2", user="u2")),
        lambda: h.feed(role_change(7, user="u0", granted=("editor",))),
        lambda: h.feed(role_change(8, user="u1", removed=("viewer",))),
        lambda: h.tick(150),  # idle deadlines of the untouched sessions
        lambda: h.feed(login(160, "s9", user="u0")),
        lambda: h.tick(200_000),  # ended markers and idle users forgotten: tombstones
        lambda: h.feed(login(200_010, "s10", user="u2")),
    ]
    for batch in batches[:batches_run]:
        batch()
        ends.append(len(h.changelog))
    return h, ends


def _full(changelog: list[tuple[str, bytes | None]]) -> PartitionEnforcer:
    fresh = PartitionEnforcer(policy())
    for key, value in changelog:
        fresh.state.restore(key, value)
    fresh.state.finish_restore()
    return fresh


def _view(e: PartitionEnforcer) -> tuple[dict[Any, Any], dict[Any, Any]]:
    sessions = {k: (type(s).__name__, s.to_row()) for k, s in e.state.sessions.items()}
    users = {k: (u.to_row(), sorted(u.sessions)) for k, u in e.state.user_items()}
    return sessions, users


def _header(offset: int, partition: int = 1, written_at: float = T0) -> Header:
    return Header(TOPIC, partition, offset, FACTS.cluster_id, FACTS.topic_id, written_at, 0, 0)


def _from_snapshot(tmp_path: Path, state: PartitionEnforcer, tail: list[Any]) -> Any:
    snapshot.write(tmp_path, snapshot.capture(state.state, _header(0)))
    path = snapshot.path_for(tmp_path, TOPIC, 1)
    fresh = PartitionEnforcer(policy())
    snapshot.load(path, snapshot.read_header(path), fresh.state)
    for key, value in tail:
        fresh.state.restore(key, value)
    fresh.state.finish_restore()
    return fresh


@pytest.mark.parametrize("cut", range(8))
def test_a_snapshot_and_the_changelog_after_it_restore_what_the_whole_changelog_does(
    tmp_path: Path, cut: int
) -> None:
    """Snapshot after any batch, replay the rest: the same sessions, markers and users."""
    h, ends = _history()
    at_cut = _full(h.changelog[: ends[cut]])  # the committed state as of the snapshot
    fresh = _from_snapshot(tmp_path, at_cut, h.changelog[ends[cut] :])
    assert _view(_full(h.changelog)) == _view(fresh)


@pytest.mark.parametrize("batches_run", range(1, 9))
def test_a_snapshot_of_a_live_partition_restores_what_its_changelog_does(
    tmp_path: Path, batches_run: int
) -> None:
    """Taken from the enforcer that produced the changelog (not a restored one), which holds
    more than its changelog says (users derived from sessions): only the changelog's part."""
    h, _ = _history(batches_run)
    fresh = _from_snapshot(tmp_path, h.enforcer, [])
    assert _view(_full(h.changelog)) == _view(fresh)
    assert len(fresh.state.sessions) >= 6


def test_replaying_from_an_earlier_offset_than_the_snapshots_changes_nothing(
    tmp_path: Path,
) -> None:
    """Why an offset at or before the exact one is safe: the last record per key still wins."""
    h, ends = _history()
    at_cut = _full(h.changelog[: ends[4]])
    fresh = _from_snapshot(tmp_path, at_cut, h.changelog[ends[1] :])
    assert _view(_full(h.changelog)) == _view(fresh)


def test_a_state_restored_from_a_snapshot_fires_the_same_revocations(tmp_path: Path) -> None:
    """Deadlines after the restore fire the same way, with the same reasons and times."""
    h, ends = _history()
    full = _full(h.changelog[: ends[3]])
    snap = _from_snapshot(tmp_path, _full(h.changelog[: ends[1]]), h.changelog[ends[1] : ends[3]])
    fired = []
    for e in (full, snap):
        e.state.begin()
        e.apply(role_change(9, user="u0", removed=("viewer",)), T0 + 9)
        e.fire_due(T0 + 100_000, T0 + 100_000)
        e.state.commit()
        out = e.state.take_outputs()
        revoked = [o.value for o in out if o.topic == "revocations"]
        fired.append(sorted((r["session_id"], r["reason"], r["effective_at"]) for r in revoked))
    assert fired[0] == fired[1]
    assert {"permissions_revoked", "idle_timeout"} == {reason for _, reason, _ in fired[0]}


def _expect(**changes: Any) -> Expect:
    base = Expect(TOPIC, 1, 10, 500, FACTS.cluster_id, FACTS.topic_id, T0 + 60, 3600.0)
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("header", "expect", "reason"),
    [
        (_header(100, partition=2), _expect(), "another changelog partition"),
        (replace(_header(100), topic="other"), _expect(), "another changelog partition"),
        (_header(100), _expect(cluster_id="cluster-b"), "another cluster"),
        (_header(100), _expect(topic_id="topic-b"), "earlier changelog topic"),
        (_header(5), _expect(), "below the changelog's start"),
        (_header(501), _expect(), "beyond the changelog's end"),
        (_header(100, written_at=T0 - 3600), _expect(), "older than"),
        (_header(100, written_at=T0 + 120), _expect(), "older than"),  # from the future
    ],
)
def test_a_snapshot_that_does_not_fit_is_refused(
    header: Header, expect: Expect, reason: str
) -> None:
    """Each mismatch alone refuses the snapshot; the same snapshot fits otherwise."""
    assert snapshot.refusal(_header(100), _expect()) is None
    assert snapshot.refusal(_header(10), _expect()) is None  # at the start
    assert snapshot.refusal(_header(500), _expect()) is None  # at the end
    refused = snapshot.refusal(header, expect)
    assert refused is not None and reason in refused


def _written(tmp_path: Path) -> Path:
    h, _ = _history()
    snapshot.write(tmp_path, snapshot.capture(h.enforcer.state, _header(42)))
    return snapshot.path_for(tmp_path, TOPIC, 1)


def test_a_snapshot_file_is_private_and_its_header_says_what_it_holds(tmp_path: Path) -> None:
    """0600 in a 0700 directory; the header names topic, partition, offset and counts."""
    path = _written(tmp_path / "state")
    assert 0o600 == stat.S_IMODE(path.stat().st_mode)
    assert 0o700 == stat.S_IMODE(path.parent.stat().st_mode)
    header = snapshot.read_header(path)
    assert (TOPIC, 1, 42, "cluster-a", "topic-a") == (
        header.topic,
        header.partition,
        header.offset,
        header.cluster_id,
        header.topic_id,
    )
    assert header.sessions > 3 and header.users >= 1
    assert [path] == list(path.parent.iterdir())  # no temporary file left behind


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-10],  # truncated body
        lambda data: data[:-5] + bytes([data[-5] ^ 1]) + data[-4:],  # a flipped bit
        lambda data: b"GARBAGE" + data,  # not a snapshot
        lambda data: data.replace(b'"format":1', b'"format":9'),  # a later format
        lambda data: data.replace(b'"offset":42', b'"offset":"42"'),
        lambda data: data.replace(b'"written_at":1800000000.0', b'"written_at":"x"'),
        lambda data: data.replace(b'"cluster_id":"cluster-a"', b'"cluster_id":7'),
        lambda data: data[:40],  # cut inside the header
        lambda data: b"",
    ],
)
def test_a_damaged_snapshot_is_refused(tmp_path: Path, damage: Any) -> None:
    """Whatever is wrong with the file, loading raises SnapshotError, never anything else."""
    path = _written(tmp_path)
    fresh = PartitionEnforcer(policy()).state
    snapshot.load(path, snapshot.read_header(path), fresh)  # intact: loads
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SnapshotError):
        snapshot.load(path, snapshot.read_header(path), PartitionEnforcer(policy()).state)


def _checkpoints(tmp_path: Path, now: float = T0 + 60) -> Checkpoints:
    cp = Checkpoints(tmp_path, TOPIC, interval_s=3600, max_records=3, clock=lambda: now)
    cp.facts = FACTS
    return cp


def test_the_shell_restores_from_a_fitting_snapshot_and_says_so(tmp_path: Path) -> None:
    """Checkpoints.load: the snapshot's offset to replay from, and its state loaded."""
    h, _ = _history()
    cp = _checkpoints(tmp_path)
    snapshot.write(tmp_path, snapshot.capture(h.enforcer.state, _header(42)))
    fresh = PartitionEnforcer(policy())
    assert 42 == cp.load(fresh.state, 1, 0, 50)
    cp.close()
    assert len(h.enforcer.state.sessions) == len(fresh.state.sessions)


@pytest.mark.parametrize("case", ["missing", "corrupt", "offset beyond end", "old", "foreign"])
def test_the_shell_falls_back_to_a_full_restore_and_logs_why(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """None (restore from offset 0) and one log line with the reason, never a session id."""
    path = _written(tmp_path)
    high, now = 50, T0 + 60
    if case == "missing":
        path.unlink()
    elif case == "corrupt":
        path.write_bytes(path.read_bytes()[:-3])
    elif case == "offset beyond end":
        high = 41
    elif case == "old":
        now = T0 + FACTS.max_age_s + 1
    else:
        path.rename(snapshot.path_for(tmp_path, TOPIC, 3))
    cp = _checkpoints(tmp_path, now)
    with caplog.at_level(logging.INFO, logger="sessionwarden.enforcer.checkpoints"):
        partition = 3 if case == "foreign" else 1
        assert cp.load(PartitionEnforcer(policy()).state, partition, 0, high) is None
    cp.close()
    lines = [r for r in caplog.records if r.getMessage().startswith("restoring the partition")]
    assert ["restoring the partition from the changelog's start"] == [r.getMessage() for r in lines]
    assert "s1" not in str(lines[0].__dict__)


def test_offsets_advance_only_with_committed_transactions(tmp_path: Path) -> None:
    """Records of an aborted transaction never move the offset a snapshot is written at."""
    h, _ = _history()
    cp = _checkpoints(tmp_path)
    cp.restored(1, 10, replayed=0, whole=False)
    cp.record(1, 10)
    cp.record(1, 11)
    cp.aborted()
    cp.record(1, 13)
    cp.committed()
    cp.record(1, 14)  # of the transaction still open
    cp.flush({1: h.enforcer.state}, wait_s=10)
    cp.close()
    assert 14 == snapshot.read_header(snapshot.path_for(tmp_path, TOPIC, 1)).offset


def test_a_partition_is_snapshotted_once_enough_records_committed(tmp_path: Path) -> None:
    """``max_records`` committed records make a snapshot due before the interval passes."""
    h, _ = _history()
    cp = _checkpoints(tmp_path)
    cp.restored(1, 0, replayed=0, whole=False)
    path = snapshot.path_for(tmp_path, TOPIC, 1)
    for offset in range(2):
        cp.record(1, offset)
    cp.committed()
    cp.tick({1: h.enforcer.state})
    assert not path.exists()
    cp.record(1, 2)
    cp.committed()
    cp.tick({1: h.enforcer.state})
    cp.close()
    assert 3 == snapshot.read_header(path).offset


class _Delivered:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class _DeliveringProducer(RecordingProducer):
    """Reports every record with a delivery callback delivered at the next offset; its next
    commit fails as abortable when ``refuse_commit`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.next_offset = 100
        self.refuse_commit = False

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: Any = None,
        partition: int = -1,
        headers: Any = None,
        on_delivery: Any = None,
    ) -> None:
        super().produce(topic, value, key, partition, headers, on_delivery)
        if on_delivery is not None:
            on_delivery(None, _Delivered(partition, self.next_offset))
            self.next_offset += 1

    def commit_transaction(self, timeout: float = -1) -> None:
        if self.refuse_commit:
            raise KafkaException(KafkaError(KafkaError._STATE, "x", txn_requires_abort=True))


def test_the_batch_tells_the_snapshots_the_changelog_offsets_it_committed(tmp_path: Path) -> None:
    """The changelog's delivery reports reach the snapshots through the batch: those of a
    committed transaction move the offset a snapshot is written at, an aborted one's never."""
    cp = _checkpoints(tmp_path)
    cp.restored(1, 0, replayed=0, whole=False)
    ctx = EnforcerContext(SETTINGS, policy(), TopicNames(), lambda: T0, checkpoints=cp)
    enforcer = PartitionEnforcer(policy(), 1)
    ctx.parts[1] = PartitionRuntime(enforcer, PartitionClock(0.0))
    producer = _DeliveringProducer()
    batch = Batch(ctx, producer, TxnCalls(10.0, 0.0), lambda: None, FireAt())

    batch.begin()
    batch.decide(enforcer, login(0, "s1"), T0, T0)
    batch.commit(consumed=True)  # its changelog record is delivered at offset 100
    batch.begin()
    batch.decide(enforcer, login(1, "s2", user="u2"), T0 + 1, T0 + 1)
    producer.refuse_commit = True
    with pytest.raises(TxnFailure):
        batch.commit(consumed=True)  # delivered at 101, never committed
    batch.abort("test")
    producer.refuse_commit = False
    batch.begin()
    batch.commit(consumed=True)  # the next transaction commits, with no changelog record

    cp.flush({1: enforcer.state}, wait_s=10)
    cp.close()
    assert 101 == snapshot.read_header(snapshot.path_for(tmp_path, TOPIC, 1)).offset
