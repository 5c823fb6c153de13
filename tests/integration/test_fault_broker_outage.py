"""A 30 s broker outage under load: the enforcer recovers by itself and misses nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.fault_harness import (
    Truth,
    assert_enforced,
    cluster_settings,
    own_cluster,
    play,
    report_failure,
    session_load,
    settle,
    verify_run,
    wait_all_revoked,
)
from tests.integration.harness import Collector, EnforcerProcess

pytestmark = pytest.mark.faults

OUTAGE_S = 30.0


def test_broker_outage_of_30s_every_overdue_revocation_appears_exactly_once(
    tmp_path: Path,
) -> None:
    """Sessions whose deadlines fall inside the outage are revoked once the broker is back,
    with no manual restart, exactly once, none early, none as of a later deadline."""
    with own_cluster(1) as cluster:
        settings = cluster_settings(cluster)
        enforcer = EnforcerProcess(settings)
        revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
        try:
            enforcer.wait_assigned()
            truth = Truth()
            t0 = time.time() + 0.5
            # Deadlines from t0+3 to ~t0+15; the broker stops at ~t0+9 while events flow.
            appended = play(settings, session_load(truth.run_id, t0, 300, 9.0, "a"))
            stopped = time.time()
            cluster.stop_node(1)
            assert enforcer.proc.poll() is None, enforcer.log()
            time.sleep(max(0.0, stopped + OUTAGE_S - time.time()))  # the outage itself
            cluster.start_node(1)
            back = time.time()
            t1 = time.time() + 0.5
            appended += play(settings, session_load(truth.run_id, t1, 60, 3.0, "b"))
            left_out = settle(truth, appended)
            overdue = [s for s, w in truth.sessions.items() if stopped < w["at"] < back]
            wait_all_revoked(revocations, truth, 60)
            report, text = verify_run(settings, truth, tmp_path)
            print(text)
            print(f"outage {back - stopped:.1f}s, {len(overdue)} deadlines fell inside it")
            assert len(overdue) >= 30
            assert left_out <= len(appended) // 20
            assert_enforced(revocations, truth, report, text)
        except BaseException:
            report_failure([enforcer], tmp_path)
            raise
        finally:
            revocations.close()
            enforcer.stop()
