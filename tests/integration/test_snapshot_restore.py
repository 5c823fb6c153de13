"""Restores from a local snapshot plus the changelog after it, against a real broker: the same
state (seen through later revocations) as a full restore, aborted records after the snapshot
left out, and every snapshot that does not fit refused for a full restore."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.engine import snapshot
from sessionwarden.enforcer.engine.sessions import SESSION, changelog_key
from sessionwarden.kafka.offsets import GroupOffsets, group_lag
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import (
    Collector,
    EnforcerProcess,
    login_doc,
    logout_doc,
    role_change_doc,
    wait_until,
)

SESSIONS = 24
POLICY = """name = "snapshots"
clock_skew_tolerance = "30s"
[defaults]
idle = "600s"
absolute = "1h"
[roles.viewer]
privilege = 10
[roles.editor]
privilege = 30
"""


def _enforcer(settings: Settings, state: Path, policy: Path) -> EnforcerProcess:
    # Periodic snapshots off: only a clean stop writes one, so what comes after it is a tail.
    env = {
        "SESSIONWARDEN_STATE_DIR": str(state),
        "SESSIONWARDEN_STATE_SNAPSHOT_INTERVAL_S": "3600",
        "SESSIONWARDEN_LOG_LEVEL": "INFO",
    }
    proc = EnforcerProcess(settings, policy=policy, **env)
    proc.wait_assigned()
    return proc


def _publish(settings: Settings, docs: list[dict[str, Any]]) -> None:
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        for doc in docs:
            pub.publish(doc)
        pub.flush()


def _restore_line(proc: EnforcerProcess) -> dict[str, Any]:
    """The restore of the first assignment, summed over its "restored" lines."""

    def lines() -> list[dict[str, Any]] | None:
        found = [m for m in proc.messages() if m.get("msg") == "partitions assigned and restored"]
        done = [i for i, m in enumerate(found) if not m["restoring"]]
        return found[: done[0] + 1] if done else None

    found = wait_until(lines, 60, "every partition restored")
    return {
        "partitions": sorted(p for m in found for p in m["partitions"]),
        "from_snapshot": sorted(p for m in found for p in m["from_snapshot"]),
        "restored_records": sum(m["restored_records"] for m in found),
        "live_sessions": found[-1]["live_sessions"],
    }


def _fallback_reasons(proc: EnforcerProcess) -> list[str]:
    start = "restoring the partition from the changelog's start"
    return [m["reason"] for m in proc.messages() if m.get("msg") == start]


def _drained(settings: Settings) -> None:
    """Wait until the group committed every input record."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    offsets = GroupOffsets(
        {"bootstrap.servers": settings.kafka.bootstrap_servers}, settings.enforcer.group_id
    )
    tps = [TopicPartition(settings.topics.input, p) for p in range(settings.kafka.partitions)]
    try:
        wait_until(lambda: group_lag(admin, offsets, tps) == 0, 60, "the input to be processed")
    finally:
        offsets.close()


def _every_session_ends_once(settings: Settings, revocations: Collector) -> None:
    """Log every session out: each one is revoked exactly once over the whole test (the ones
    that ended before the restore must not end again, the others must)."""
    now = time.time()
    _publish(settings, [logout_doc(f"s{i}", f"u{i % 6}", now) for i in range(SESSIONS)])
    wait_until(
        lambda: (
            {d["session_id"] for d in revocations.docs(type="revocation")}
            >= {f"s{i}" for i in range(SESSIONS)}
        ),
        60,
        f"revocations of {SESSIONS} sessions",
    )
    time.sleep(1.0)  # settle: a duplicate would arrive in the same window
    counts = Counter(d["session_id"] for d in revocations.docs(type="revocation"))
    assert {} == {sid: c for sid, c in counts.items() if c != 1}, "duplicate revocations"


def _first_run(settings: Settings, state: Path, policy: Path) -> None:
    """Logins, a role grant and some logouts; a clean stop writes the snapshots."""
    first = _enforcer(settings, state, policy)
    now = time.time()
    docs = [login_doc(f"s{i}", f"u{i % 6}", now) for i in range(SESSIONS)]
    docs += [role_change_doc("u0", now + 0.1, granted=["editor"])]
    docs += [logout_doc(f"s{i}", f"u{i % 6}", now + 0.2) for i in range(4)]
    _publish(settings, docs)
    _drained(settings)
    assert 0 == first.stop()
    assert sorted(state.glob("*.snapshot")), "a clean stop wrote no snapshot"


def _aborted_tombstones(settings: Settings) -> None:
    """Another writer's transaction, aborted: a tombstone of every session on every partition."""
    p = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "transactional.id": f"aborted-{uuid.uuid4().hex[:8]}",
            "log_level": 3,
        }
    )
    p.init_transactions(30)
    p.begin_transaction()
    for partition in range(settings.kafka.partitions):
        for i in range(SESSIONS):
            key = changelog_key(SESSION, ("acme", f"s{i}"))
            p.produce(settings.topics.enforcer_state, None, key, partition=partition)
    assert 0 == p.flush(10)
    p.abort_transaction(30)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "snapshots.toml"
    path.write_text(POLICY)
    return path


def test_a_restart_after_sigkill_restores_from_the_snapshot_and_the_changelog_after_it(
    settings_factory: Callable[..., Settings], tmp_path: Path, policy: Path
) -> None:
    """Snapshot at a clean stop, a tail of logouts after it, SIGKILL, an aborted transaction
    tombstoning every session: the next enforcer starts from the snapshot, replays the tail
    without the aborted records, and every session ends exactly once."""
    settings = settings_factory()
    state = tmp_path / "state"
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    procs: list[EnforcerProcess] = []
    try:
        _first_run(settings, state, policy)
        procs.append(_enforcer(settings, state, policy))
        assert [] == _fallback_reasons(procs[0])
        now = time.time()
        _publish(settings, [logout_doc(f"s{i}", f"u{i % 6}", now) for i in range(4, 12)])
        _drained(settings)
        procs[0].kill()
        _aborted_tombstones(settings)
        procs.append(_enforcer(settings, state, policy))
        restored = _restore_line(procs[1])
        assert [] == _fallback_reasons(procs[1])
        assert restored["from_snapshot"] == restored["partitions"]
        assert SESSIONS - 12 == restored["live_sessions"]  # the tail's logouts replayed
        assert restored["restored_records"] > 0
        _every_session_ends_once(settings, revocations)
    finally:
        revocations.close()
        for proc in procs:
            proc.stop()


def _damage(case: str, state: Path, settings: Settings) -> str:
    """Spoil every snapshot in one way; the reason the restore must give."""
    files = sorted(state.glob("*.snapshot"))
    if case == "corrupt":
        for f in files:
            data = f.read_bytes()
            f.write_bytes(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
        return "checksum"
    if case == "another partition":
        paths = [snapshot.path_for(state, settings.topics.enforcer_state, p) for p in (0, 1)]
        data = [path.read_bytes() for path in paths]
        paths[0].write_bytes(data[1])
        paths[1].write_bytes(data[0])
        return "another changelog partition"
    if case == "beyond the end":  # as if the changelog had been recreated
        for f in files:
            data = f.read_bytes()
            head = snapshot.read_header(f)
            f.write_bytes(data.replace(b'"offset":%d' % head.offset, b'"offset":%d' % 10**9, 1))
        return "beyond the changelog's end"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    resource = ConfigResource(
        ResourceType.TOPIC,
        settings.topics.enforcer_state,
        incremental_configs=[
            ConfigEntry("delete.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(30)
    time.sleep(1.2)  # older than 0.9 s: the retention share a snapshot may be old
    return "older than the changelog's tombstone retention"


@pytest.mark.parametrize("case", ["corrupt", "another partition", "beyond the end", "old"])
def test_a_snapshot_that_does_not_fit_falls_back_to_the_full_restore(
    settings_factory: Callable[..., Settings], tmp_path: Path, policy: Path, case: str
) -> None:
    """The enforcer says why it reads the changelog from its start, and its state is whole."""
    settings = settings_factory(partitions=2)
    state = tmp_path / "state"
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    proc = None
    try:
        _first_run(settings, state, policy)
        reason = _damage(case, state, settings)
        proc = _enforcer(settings, state, policy)
        reasons = _fallback_reasons(proc)
        assert 2 == len(reasons) and all(reason in r for r in reasons), reasons
        assert [] == _restore_line(proc)["from_snapshot"]
        assert SESSIONS - 4 == _restore_line(proc)["live_sessions"]
        _every_session_ends_once(settings, revocations)
    finally:
        revocations.close()
        if proc is not None:
            proc.stop()
