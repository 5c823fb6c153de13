"""Crash, failover and backlog: exactly-once revocation against ground truth."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import (
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    logout_doc,
    parse_ts,
    wait_until,
)

IDLE = 3.0  # fast.toml, risk profile "medium"
SNAPSHOT_LOADED = "restoring the partition from its snapshot"


def _scenario(t0: float, n: int) -> tuple[list[tuple[float, dict[str, Any]]], dict[str, Any]]:
    """A timed event script and its ground truth: session -> (reason, effective_at)."""
    script: list[tuple[float, dict[str, Any]]] = []
    truth: dict[str, tuple[str, float]] = {}
    for i in range(n):
        sid, user, start = f"s{i}", f"user-{i % 17}", t0 + i * 0.1
        script.append((start, login_doc(sid, user, start)))
        if i % 3 == 0:
            truth[sid] = ("idle_timeout", start + IDLE)
        elif i % 3 == 1:
            script.append((start + 1, logout_doc(sid, user, start + 1)))
            truth[sid] = ("logout", start + 1)
        else:
            script.append((start + 1, activity_doc(sid, user, start + 1)))
            script.append((start + 2, activity_doc(sid, user, start + 2)))
            truth[sid] = ("idle_timeout", start + 2 + IDLE)
    script.sort(key=lambda row: row[0])
    return script, truth


Script = list[tuple[float, dict[str, Any]]]


def _play(settings: Settings, script: Script, at: dict[float, Callable[[], None]]) -> None:
    """Publish each event when the wall clock reaches its time; run hooks at their times."""
    hooks = sorted(at.items())
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        for when, doc in script:
            while hooks and hooks[0][0] <= when:
                wait_until(lambda h=hooks[0][0]: time.time() >= h, 30, "a hook's time")
                hooks.pop(0)[1]()
            wait_until(lambda w=when: time.time() >= w, 30, "an event's time")
            pub.publish(doc)
            pub.flush()
    for when, hook in hooks:
        wait_until(lambda w=when: time.time() >= w, 30, "a hook's time")
        hook()


def _check_exactly_once(revocations: Collector, truth: dict[str, Any]) -> None:
    def complete() -> bool:
        return {d["session_id"] for d in revocations.docs(type="revocation")} >= set(truth)

    wait_until(complete, 45, f"revocations for all {len(truth)} sessions")
    time.sleep(1.0)  # settle: a duplicate would arrive in the same window
    docs = revocations.docs(type="revocation")
    counts = Counter(d["session_id"] for d in docs)
    assert {} == {sid: c for sid, c in counts.items() if c != 1}, "duplicate revocations"
    actual = {d["session_id"]: (d["reason"], round(parse_ts(d["effective_at"]), 3)) for d in docs}
    expected = {sid: (reason, round(at, 3)) for sid, (reason, at) in truth.items()}
    assert expected == actual


@pytest.mark.parametrize("local_state", [False, True], ids=["changelog", "snapshots"])
def test_sigkill_and_restart_ends_every_session_exactly_once(
    settings_factory: Callable[..., Settings], tmp_path: Path, local_state: bool
) -> None:
    """A crash mid-transaction loses nothing and doubles nothing (ground truth comparison);
    with local state, snapshots are written every turn, so the restart loads one."""
    settings = settings_factory()
    env = (
        {
            "SESSIONWARDEN_STATE_DIR": str(tmp_path / "state"),
            "SESSIONWARDEN_STATE_SNAPSHOT_INTERVAL_S": "0.1",
            "SESSIONWARDEN_LOG_LEVEL": "INFO",
        }
        if local_state
        else {}
    )
    procs = [EnforcerProcess(settings, **env)]
    procs[0].wait_assigned()
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    t0 = time.time() + 0.5
    script, truth = _scenario(t0, 60)

    def crash_and_restart() -> None:
        procs[0].kill()
        procs.append(EnforcerProcess(settings, **env))  # same instance id: fences the zombie

    try:
        _play(settings, script, {t0 + 3.0: crash_and_restart})
        _check_exactly_once(revocations, truth)
        if local_state:
            loaded = [m for m in procs[1].messages() if m.get("msg") == SNAPSHOT_LOADED]
            assert loaded, "the restart restored no partition from a snapshot"
    finally:
        revocations.close()
        for proc in procs:
            proc.stop()


def test_survivor_takes_over_a_killed_members_partitions(
    settings_factory: Callable[..., Settings],
) -> None:
    """Two enforcers share the partitions; one dies for good and the other misses nothing."""
    settings = settings_factory()
    a = EnforcerProcess(settings, instance_id="a")
    b = EnforcerProcess(settings, instance_id="b")
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    try:
        a.wait_assigned()
        b.wait_assigned()
        t0 = time.time() + 0.5
        script, truth = _scenario(t0, 45)
        _play(settings, script, {t0 + 2.0: a.kill})
        try:
            _check_exactly_once(revocations, truth)
        except AssertionError:
            print(f"survivor's log:\n{b.log()}")
            raise
        assert b.proc.poll() is None
    finally:
        revocations.close()
        a.stop()
        b.stop()


def test_backlog_read_after_a_restart_causes_no_false_idle_revocation(
    settings_factory: Callable[..., Settings],
) -> None:
    """Activity produced while the enforcer was down keeps the session alive once read."""
    settings = settings_factory()
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    first = EnforcerProcess(settings)
    try:
        first.wait_assigned()
        t0 = time.time()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("kept", "u-backlog", t0))
        wait_until(lambda: time.time() > t0 + 0.5, 5, "the login to be processed")
        assert 0 == first.stop()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            for k in (1, 2, 3, 4):  # one event per second while the enforcer is down
                wait_until(lambda k=k: time.time() >= t0 + k, 5, "the next activity")
                pub.publish(activity_doc("kept", "u-backlog", time.time()))
                for j in range(20):
                    pub.publish(activity_doc(f"other-{j}", f"u-other-{j}", time.time()))
                pub.flush()
            last_activity = time.time()
        wait_until(lambda: time.time() >= t0 + 6, 5, "the backlog to be older than idle")
        # batch size 1: without the lag rule, the first batch would fire the stale deadline
        second = EnforcerProcess(settings, SESSIONWARDEN_BATCH_SIZE="1")
        try:
            doc = wait_until(lambda: revocations.docs(session_id="kept"), 30, "the revocation")[0]
        finally:
            second.stop()
    finally:
        revocations.close()
        first.stop()
    assert "idle_timeout" == doc["reason"]
    assert parse_ts(doc["effective_at"]) > last_activity + IDLE - 1.2
