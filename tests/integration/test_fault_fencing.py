"""Another process takes the enforcer's transactional id while a batch is being committed: the
fenced enforcer exits 3 within seconds, quietly, without trying to abort what it can no longer
touch. A fence of its own doing (its transaction outlived the transaction timeout) rebuilds
instead, however often it comes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import IsolationLevel, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from sessionwarden.config.settings import Settings
from tests.integration.fault_harness import (
    OpenTransactionWatcher,
    Truth,
    paced_logins,
    report_failure,
    wait_all_revoked,
)
from tests.integration.harness import Collector, EnforcerProcess, parse_ts, wait_until

pytestmark = pytest.mark.faults

EXIT_FENCED = 3
# The fenced batch's next transactional call fails at once; closing is then the consumer's
# close and the metrics server's: about a second. The defect spun for txn_retry_timeout_s (30 s
# by default) on an abort a fenced producer cannot make.
EXIT_BOUND_S = 5.0
# Warnings and errors a fence may say: the batch's failure, the exit line, a closing client's
# complaint each. The defect wrote 400,000+ lines. (Info lines of sessions that a batch in
# flight ended are not counted.)
LOG_LINES_BOUND = 40


def test_an_enforcer_fenced_during_a_commit_exits_3_promptly_with_a_bounded_log(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(instance_id="0")
    enforcer = EnforcerProcess(settings, instance_id=settings.enforcer.instance_id)
    fenced: list[tuple[float, int]] = []  # when, and how many log lines had been written
    rogue = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "transactional.id": settings.transactional_id,
            "log_level": 3,
        }
    )

    def take_over() -> None:
        """A second process with the enforcer's transactional id (a replica given the same
        SESSIONWARDEN_INSTANCE_ID) starts: its init_transactions fences the enforcer."""
        rogue.init_transactions(30)
        fenced.append((time.monotonic(), len(enforcer.lines)))

    watcher = OpenTransactionWatcher(settings, take_over)
    stop_load = threading.Event()
    load = threading.Thread(
        target=paced_logins, args=(settings, Truth(), 2000, 20.0, "f", stop_load), daemon=True
    )
    try:
        enforcer.wait_assigned()
        load.start()
        watcher.arm()
        wait_until(watcher.fired.is_set, 30, "a transaction caught mid-commit")
        code = enforcer.wait_exit(60)
        exited = time.monotonic()
        at, lines_before = fenced[0]
        after = len(enforcer.lines) - lines_before
        warned = [line for line in enforcer.lines[lines_before:] if '"level":"info"' not in line]
        print(
            f"exit {code} {exited - at:.2f}s after the fence; {after} log lines after it, "
            f"{len(warned)} of them warnings or errors:"
        )
        print("\n".join(line[:240] for line in warned))
        assert EXIT_FENCED == code
        assert exited - at < EXIT_BOUND_S
        assert len(warned) < LOG_LINES_BOUND
        said = [str(m.get("msg", "")) for m in enforcer.messages()]
        assert 1 == sum(m.startswith("fenced: another enforcer took over") for m in said), said
        assert not any("abort" in m for m in said), said
    except BaseException:
        report_failure([enforcer], tmp_path)
        raise
    finally:
        stop_load.set()
        load.join(30)
        watcher.close()
        enforcer.stop()


def test_two_enforcers_with_one_instance_id_end_with_one_running_and_nothing_lost(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """A second replica started with the same SESSIONWARDEN_INSTANCE_ID fences the first:
    one of them exits 3 within seconds (they must not fence each other back and forth), the
    other enforces every session exactly once."""
    settings = settings_factory()
    procs = [EnforcerProcess(settings, instance_id="0")]
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    truth = Truth()
    stop_load = threading.Event()
    load = threading.Thread(
        target=paced_logins, args=(settings, truth, 1200, 12.0, "d", stop_load), daemon=True
    )
    try:
        procs[0].wait_assigned()
        load.start()
        wait_until(lambda: revocations.docs(type="revocation"), 30, "the first revocations")
        procs.append(EnforcerProcess(settings, instance_id="0"))

        def one_exited() -> EnforcerProcess | None:
            return next((p for p in procs if p.proc.poll() is not None), None)

        loser = wait_until(one_exited, 60, "one of the two to exit")
        exited = time.time()
        survivor = procs[1 - procs.index(loser)]

        def second_started() -> float | None:
            """When the second one's init_transactions (the fence) had returned."""
            lines = [m for m in procs[1].messages() if m.get("msg") == "enforcer started"]
            return parse_ts(lines[0]["ts"]) if lines else None

        started = wait_until(second_started, 30, "the second enforcer to start")
        n = procs.index(loser)
        print(f"enforcer {n} exited {exited - started:.2f}s after the second one started")
        assert EXIT_FENCED == loser.wait_exit(10)
        assert exited - started < EXIT_BOUND_S
        load.join(30)
        wait_all_revoked(revocations, truth, 60)
        docs = [d for d in revocations.docs(type="revocation") if d["session_id"] in truth.sessions]
        assert {} == {s: c for s, c in Counter(d["session_id"] for d in docs).items() if c != 1}
        assert survivor.proc.poll() is None, survivor.log()
    except BaseException:
        report_failure(procs, tmp_path)
        raise
    finally:
        stop_load.set()
        load.join(30)
        revocations.close()
        for proc in procs:
            proc.stop()


TIMED_OUT_TXN_MS = 1500  # the coordinator aborts (and fences) past this, within 1 s more
TIMED_OUT_ROUNDS = 3  # FenceWindow's limit: the defect exited 3 at the third


def committed_end(admin: AdminClient, topic: str, partition: int) -> int:
    """The partition's last stable offset: no open transaction starts below it."""
    tp = TopicPartition(topic, partition)
    futures = admin.list_offsets(
        {tp: OffsetSpec.latest()}, isolation_level=IsolationLevel.READ_COMMITTED
    )
    return int(futures[tp].result().offset)


def test_an_enforcer_paused_past_its_transaction_timeout_rebuilds_and_never_exits_3(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """A pause longer than transaction.timeout.ms inside a batch (a slow disk, a GC pause, a
    stalled host): the coordinator aborts the transaction and fences the producer. That is the
    enforcer's own doing, however often it happens: it rebuilds and says why, and never exits
    3 as if another process had taken its id."""
    settings = settings_factory(instance_id="0")
    env = {
        "SESSIONWARDEN_TRANSACTION_TIMEOUT_MS": str(TIMED_OUT_TXN_MS),
        # The pause must not also time the consumer's session out.
        "SESSIONWARDEN_SESSION_TIMEOUT_MS": "45000",
    }
    enforcer = EnforcerProcess(settings, instance_id=settings.enforcer.instance_id, **env)
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    topic = settings.topics.enforcer_state
    stop_load = threading.Event()
    load = threading.Thread(
        target=paced_logins, args=(settings, Truth(), 6000, 90.0, "p", stop_load), daemon=True
    )

    def said(text: str) -> int:
        return sum(text in str(m.get("msg", "")) for m in enforcer.messages())

    def running() -> bool:
        assert enforcer.proc.poll() is None, f"exited {enforcer.proc.poll()}: {enforcer.log()}"
        return True

    def pause_in_a_transaction() -> None:
        """Stop the process (SIGSTOP) inside a batch's transaction until the transaction has
        ended (aborted by the coordinator past the timeout, or committed if the stop came
        just after the commit), then let it run on until it works again."""
        watcher = OpenTransactionWatcher(
            settings, lambda: os.kill(enforcer.proc.pid, signal.SIGSTOP)
        )
        try:
            watcher.arm()
            wait_until(watcher.fired.is_set, 60, "a transaction caught open")
        finally:
            watcher.close()
        part, offset = watcher.record
        wait_until(lambda: committed_end(admin, topic, part) > offset, 60, "its end")
        started, end = said("enforcer started"), committed_end(admin, topic, part)
        os.kill(enforcer.proc.pid, signal.SIGCONT)
        wait_until(
            lambda: (
                running()
                and (said("enforcer started") > started or committed_end(admin, topic, part) > end)
            ),
            60,
            "a rebuild or a later batch",
        )

    try:
        enforcer.wait_assigned()
        load.start()
        rounds = 0
        while said("enforcer lost its transaction state") < TIMED_OUT_ROUNDS:
            assert rounds < 10 * TIMED_OUT_ROUNDS, enforcer.log()  # most catch no open one
            rounds += 1
            pause_in_a_transaction()
            assert enforcer.proc.poll() is None, enforcer.log()
        wait_until(lambda: said("enforcer started") > TIMED_OUT_ROUNDS, 60, "the last rebuild")
        print(f"{said('enforcer lost its transaction state')} rebuilds in {rounds} pauses")
        assert enforcer.proc.poll() is None, enforcer.log()
        assert 0 == said("another enforcer took over"), enforcer.log()
        assert said("the coordinator aborted our own transaction") >= TIMED_OUT_ROUNDS
    except BaseException:
        report_failure([enforcer], tmp_path)
        raise
    finally:
        if enforcer.proc.poll() is None:
            os.kill(enforcer.proc.pid, signal.SIGCONT)
        stop_load.set()
        load.join(30)
        enforcer.stop()
