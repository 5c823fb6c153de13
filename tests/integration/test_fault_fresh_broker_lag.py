"""A consumer group's lag asked of a broker that has only just started, while its offsets topic
is still being created and loaded: the answer is a number or an error, never a crash of the
asking process (the dashboard and the latency benchmark ask it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.fault_harness import own_cluster

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[2]

# Run in a child process: a segmentation fault there fails this test instead of ending the run.
ASK = textwrap.dedent("""
    import sys
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    from sessionwarden.kafka.offsets import GroupOffsets, group_lag

    servers = sys.argv[1]
    client = {"bootstrap.servers": servers, "log_level": 3}
    admin = AdminClient(client)
    admin.create_topics([NewTopic("lagged", 3, 1)])["lagged"].result(30)
    producer = Producer(client)
    for n in range(7):
        producer.produce("lagged", b"x", partition=n % 3)
    producer.flush(30)
    tps = [TopicPartition("lagged", p) for p in range(3)]
    for group in ("never-committed-1", "never-committed-2"):
        offsets = GroupOffsets(client, group)
        print(group_lag(admin, offsets, tps, timeout=20))
        offsets.close()
    committer = Consumer({**client, "group.id": "committed-some", "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition("lagged", 0, 3)], asynchronous=False)
    committer.close()
    offsets = GroupOffsets(client, "committed-some")
    print(group_lag(admin, offsets, tps, timeout=20))
    offsets.close()
""")


def test_group_lag_on_a_broker_just_started_answers_instead_of_crashing() -> None:
    with own_cluster(1) as cluster:
        done = subprocess.run(
            [sys.executable, "-c", ASK, cluster.bootstrap],
            capture_output=True, text=True, timeout=180, cwd=REPO,
        )  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-2000:]}"
    # 7 records over 3 partitions (3, 2, 2); the committing group has consumed partition 0.
    assert done.stdout.split() == ["7", "7", "4"]
