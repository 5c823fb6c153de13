"""Transaction-coordinator failover on three nodes: the node coordinating the enforcer's
transactional id is killed 2 s into a burst of 2,000 logins."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from infra.kafka.cluster import KafkaCluster, coordinator_partition
from sessionwarden.config.settings import Settings
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.fault_harness import (
    TIMEOUTS,
    Truth,
    assert_enforced,
    cluster_settings,
    own_cluster,
    report_failure,
    verify_run,
    wait_all_revoked,
)
from tests.integration.harness import Collector, EnforcerProcess, login_doc, parse_ts, wait_until

pytestmark = pytest.mark.faults

LOGINS = 2000
BURST_S = 4.0
KILL_AFTER_S = 2.0
# What bounds the stall (docs/ARCHITECTURE.md, failure handling): the killed broker is declared
# dead after broker.session.timeout.ms (9 s, Kafka's default) and its coordinator role moves;
# meanwhile each transactional call retries for at most txn_retry_timeout_s, after which the
# enforcer rebuilds its clients, and the rebuild's init_transactions is bounded the same way.
# Then a restore from the changelog and a batch (a few seconds here) follow.
TXN_RETRY_TIMEOUT_S = 15.0  # above the 9 s the cluster takes to declare the node dead
TRANSACTION_TIMEOUT_S = 5.0  # harness.EnforcerProcess
RESTORE_AND_BATCH_S = 10.0
STALL_BOUND_S = 2 * TXN_RETRY_TIMEOUT_S + TRANSACTION_TIMEOUT_S + RESTORE_AND_BATCH_S


def coordinator_of(cluster: KafkaCluster, transactional_id: str) -> int:
    """The broker leading the __transaction_state partition of `transactional_id`."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 3})

    def leader() -> int | None:
        md = admin.list_topics("__transaction_state", timeout=5).topics["__transaction_state"]
        if md.error is not None or not md.partitions:
            return None
        found = md.partitions[coordinator_partition(transactional_id, len(md.partitions))].leader
        return found if found > 0 else None

    return int(wait_until(leader, 30, "the transaction coordinator"))


def burst(settings: Settings, truth: Truth, on_kill: float, kill: Callable[[], None]) -> float:
    """2,000 logins over BURST_S seconds; calls `kill` at `on_kill` seconds in. Returns when
    the kill happened."""
    idle, absolute = TIMEOUTS["medium"]
    start = time.time()
    killed = 0.0
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        for i in range(LOGINS):
            due = start + BURST_S * i / LOGINS
            time.sleep(max(0.0, due - time.time()))  # pacing the load, not waiting on it
            if not killed and time.time() >= start + on_kill:
                kill()
                killed = time.time()
            sid, user, t = (
                f"{truth.run_id}-c{i}",
                f"{truth.run_id}-u{i % 97}",
                round(time.time(), 3),
            )
            pub.publish(login_doc(sid, user, t))
            truth.add(sid, user, "idle_timeout", t + idle, t + absolute)
        pub.flush()
    return killed


def test_killing_the_transaction_coordinator_mid_burst_stalls_boundedly(tmp_path: Path) -> None:
    with own_cluster(3) as cluster:
        settings = cluster_settings(cluster)
        enforcer = EnforcerProcess(
            settings, SESSIONWARDEN_TXN_RETRY_TIMEOUT_S=str(TXN_RETRY_TIMEOUT_S)
        )
        revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
        try:
            enforcer.wait_assigned(90)
            victim = coordinator_of(cluster, settings.transactional_id)
            truth = Truth()
            killed = burst(settings, truth, KILL_AFTER_S, lambda: cluster.kill(victim))
            wait_all_revoked(revocations, truth, 120)
            assert enforcer.proc.poll() is None, f"the enforcer exited:\n{enforcer.log()}"
            report, text = verify_run(settings, truth, tmp_path)
            print(text)
            late = [
                parse_ts(d["emitted_at"]) - truth.sessions[d["session_id"]]["at"]
                for d in revocations.docs(type="revocation")
                if d["session_id"] in truth.sessions
            ]
            stall = max(late)
            print(
                f"coordinator node {victim} killed at {killed:.3f}; longest stall {stall:.1f}s "
                f"(bound {STALL_BOUND_S:g}s)"
            )
            assert_enforced(revocations, truth, report, text)
            assert stall < STALL_BOUND_S
        except BaseException:
            report_failure([enforcer], tmp_path)
            raise
        finally:
            revocations.close()
            enforcer.stop()
