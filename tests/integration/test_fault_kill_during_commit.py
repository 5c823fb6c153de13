"""SIGKILL the enforcer while a batch's transaction is being committed; a restarted
instance loses nothing and doubles nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from sessionwarden.config.settings import Settings
from tests.integration.fault_harness import (
    OpenTransactionWatcher,
    Truth,
    assert_enforced,
    open_consumer,
    play,
    report_failure,
    session_load,
    settle,
    verify_run,
    wait_all_revoked,
)
from tests.integration.harness import Collector, EnforcerProcess, wait_until

pytestmark = pytest.mark.faults


def committed(settings: Settings, partition: int, offset: int) -> bool:
    """Whether the record at `offset` became visible to read_committed readers (its
    transaction committed) rather than being skipped (aborted)."""
    consumer = open_consumer(settings, "read_committed")
    topic = settings.topics.enforcer_state
    consumer.assign([TopicPartition(topic, partition, offset)])
    try:
        msgs = consumer.consume(1, 10)
        assert msgs and msgs[0].error() is None, "nothing readable after the trigger record"
        return bool(msgs[0].offset() == offset)
    finally:
        consumer.close()


def test_sigkill_during_a_commit_loses_nothing_and_doubles_nothing(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    procs = [EnforcerProcess(settings)]
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)

    def kill_and_restart() -> None:
        procs[0].kill()
        procs.append(EnforcerProcess(settings))  # same instance id: fences the dead one

    watcher = OpenTransactionWatcher(settings, kill_and_restart)
    try:
        procs[0].wait_assigned()
        truth = Truth()
        t0 = time.time() + 0.5
        script = session_load(truth.run_id, t0, 240, 8.0, "k")
        # Arm once revocations flow steadily (deadlines from t0+1, dense from t0+3).
        arm = threading.Timer(max(0.0, t0 + 4.0 - time.time()), watcher.arm)
        arm.start()
        left_out = settle(truth, play(settings, script))
        wait_until(watcher.fired.is_set, 30, "a transaction caught mid-commit")
        assert left_out <= len(script) // 20
        wait_all_revoked(revocations, truth, 60)
        report, text = verify_run(settings, truth, tmp_path)
        print(text)
        landed = committed(settings, *watcher.record)
        print(
            "killed with a batch produced and its commit in flight; that transaction "
            + ("committed before the process died" if landed else "was aborted and redone")
        )
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
