"""SIGKILL the enforcer while a transaction with revocations is being committed; a restarted
instance loses nothing and doubles nothing."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.settings import Settings
from tests.integration.fault_harness import (
    Truth,
    assert_enforced,
    play,
    report_failure,
    session_load,
    verify_run,
    wait_all_revoked,
)
from tests.integration.harness import Collector, EnforcerProcess, wait_until

pytestmark = pytest.mark.faults


class CommitWatcher:
    """Reads the revocations topic read_uncommitted: a record not yet visible read_committed
    belongs to a transaction that is open or committing. `arm()` makes the next such record
    trigger `on_open(records)` at once."""

    def __init__(
        self, settings: Settings, committed: Collector, on_open: Callable[[list[Any]], None]
    ) -> None:
        self._committed, self._on_open = committed, on_open
        self._armed = threading.Event()
        self.fired = threading.Event()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": f"watch-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_uncommitted",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "log_level": 3,
            }
        )
        topic = settings.topics.revocations
        md = self._consumer.list_topics(topic, timeout=10)
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def arm(self) -> None:
        self._armed.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            msgs = self._consumer.consume(500, 0.01)
            docs = [orjson.loads(m.value()) for m in msgs if m.error() is None and m.value()]
            if not docs or not self._armed.is_set() or self.fired.is_set():
                continue
            seen = {d["revocation_id"] for d in self._committed.docs(type="revocation")}
            pending = [d for d in docs if d.get("type") == "revocation"]
            pending = [d for d in pending if d["revocation_id"] not in seen]
            if pending:
                self._on_open(pending)
                self.fired.set()
        self._consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_sigkill_during_a_commit_loses_nothing_and_doubles_nothing(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    procs = [EnforcerProcess(settings)]
    revocations = Collector(settings.bootstrap_servers, settings.topics.revocations)
    in_flight: list[Any] = []

    def kill_and_restart(pending: list[Any]) -> None:
        procs[0].kill()
        in_flight.extend(pending)
        procs.append(EnforcerProcess(settings))  # same instance id: fences the dead one

    watcher = CommitWatcher(settings, revocations, kill_and_restart)
    try:
        procs[0].wait_assigned()
        truth = Truth()
        t0 = time.time() + 0.5
        script = session_load(truth, t0, 240, 8.0, "k")
        # Arm once revocations flow steadily (deadlines from t0+1, dense from t0+3).
        arm = threading.Timer(max(0.0, t0 + 4.0 - time.time()), watcher.arm)
        arm.start()
        play(settings, script)
        wait_until(watcher.fired.is_set, 30, "a transaction caught mid-commit")
        wait_all_revoked(revocations, truth, 60)
        report, text = verify_run(settings, truth, tmp_path)
        print(text)
        # Revocation ids are stable; a redone revocation is emitted again, at another time.
        committed = {(d["revocation_id"], d["emitted_at"]) for d in revocations.docs()}
        landed = sum((d["revocation_id"], d["emitted_at"]) in committed for d in in_flight)
        print(
            f"killed with {len(in_flight)} revocation(s) appended but not committed: "
            f"{landed} committed by the dead instance, {len(in_flight) - landed} aborted and "
            "redone by its successor"
        )
        assert in_flight
        assert_enforced(revocations, truth, report, text)
        assert procs[-1].proc.poll() is None, procs[-1].log()
    except BaseException:
        report_failure(procs, tmp_path)
        raise
    finally:
        watcher.close()
        revocations.close()
        for proc in procs:
            proc.stop()
