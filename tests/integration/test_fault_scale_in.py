"""Scale-in under load: one of three enforcers is stopped with SIGTERM (a planned stop). Its
partitions move to the others at once, not after the group's session timeout."""

from __future__ import annotations

import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.engine.forward import murmur2_partition
from tests.integration.fault_harness import Truth, paced_logins, report_failure, wait_all_revoked
from tests.integration.harness import Collector, EnforcerProcess, wait_until

pytestmark = pytest.mark.faults

PARTITIONS = 12
LOGINS = 3000
LOAD_S = 12.0
STOP_AFTER_S = 4.0
# Long enough that waiting it out cannot pass for a handover: a static member that closes
# without leaving keeps its partitions this long.
SESSION_TIMEOUT_S = 10.0
# A revocation is normally visible within lag_grace_s (2 s) of its deadline plus a batch. A
# handover adds the survivors' next heartbeat (session timeout / 4), a rebalance round and the
# restore of the moved partitions: seconds, and well below the session timeout.
HANDOVER_BOUND_S = SESSION_TIMEOUT_S / 2


def owned(proc: EnforcerProcess) -> set[int]:
    """The partitions an enforcer owns, from its log."""
    parts: set[int] = set()
    for doc in proc.messages():
        if doc.get("msg") == "partitions assigned and restored":
            parts |= set(doc["partitions"])
        elif doc.get("msg") == "partitions revoked":
            parts -= set(doc["partitions"])
    return parts


def spread(delays: list[float]) -> str:
    if not delays:
        return "none"
    q = statistics.quantiles(delays, n=100) if len(delays) > 1 else delays * 99
    return f"n={len(delays)} p50={q[49]:.2f}s p99={q[98]:.2f}s max={max(delays):.2f}s"


def test_a_planned_stop_hands_its_partitions_over_without_the_session_timeout(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(partitions=PARTITIONS)
    env = {"SESSIONWARDEN_SESSION_TIMEOUT_MS": str(int(SESSION_TIMEOUT_S * 1000))}
    procs = [EnforcerProcess(settings, instance_id=str(i), **env) for i in range(3)]
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    truth = Truth()
    stop_load = threading.Event()
    load = threading.Thread(
        target=paced_logins, args=(settings, truth, LOGINS, LOAD_S, "s", stop_load), daemon=True
    )
    try:

        def settled() -> bool:
            for proc in procs:
                assert proc.proc.poll() is None, proc.log()
            sets = [owned(p) for p in procs]
            return all(sets) and sum(map(len, sets)) == PARTITIONS == len(set().union(*sets))

        wait_until(settled, 120, "three enforcers sharing the twelve partitions")
        started = time.time()
        load.start()
        wait_until(lambda: time.time() >= started + STOP_AFTER_S, 30, "the stop's moment")
        victim = procs[2]
        moved = owned(victim)
        stopped = time.time()
        victim.proc.send_signal(signal.SIGTERM)
        load.join(LOAD_S + 30)
        wait_all_revoked(revocations, truth, 60)
        assert 0 == victim.wait_exit(30), victim.log()
        # It says it left, after librdkafka sent the LeaveGroup, with what it handed over.
        left = [d for d in victim.messages() if d.get("msg") == "left the consumer group"]
        assert [len(moved)] == [d["partitions_handed_over"] for d in left], victim.log()
        print(f"left the group {left[0]['leave_s']:.3f}s after unsubscribing")

        arrived: dict[str, float] = {}
        counts: Counter[str] = Counter()
        for t, doc in revocations.timed(type="revocation"):
            counts[doc["session_id"]] += 1
            arrived.setdefault(doc["session_id"], t)
        # Deadlines from the stop until the session timeout would have ended: the ones a
        # handover that waits out the timeout makes late.
        window = {
            sid: s
            for sid, s in truth.sessions.items()
            if stopped <= s["at"] <= stopped + SESSION_TIMEOUT_S
        }
        on_moved, elsewhere = [], []
        for sid, s in window.items():
            late = arrived[sid] - s["at"]
            part = murmur2_partition(s["user_id"].encode(), PARTITIONS)
            (on_moved if part in moved else elsewhere).append(late)
        print(
            f"stopped enforcer 2 (partitions {sorted(moved)}) at +{stopped - started:.1f}s; "
            f"revocation delay of deadlines in the {SESSION_TIMEOUT_S:g}s after the stop: "
            f"moved partitions {spread(on_moved)}; other partitions {spread(elsewhere)}"
        )
        assert {} == {s: c for s, c in counts.items() if c != 1 and s in truth.sessions}
        assert len(on_moved) >= 100
        assert max(on_moved) < HANDOVER_BOUND_S
        for proc in procs[:2]:
            assert proc.proc.poll() is None, proc.log()
    except BaseException:
        report_failure(procs, tmp_path)
        raise
    finally:
        stop_load.set()
        load.join(30)
        revocations.close()
        for proc in procs:
            proc.stop()
