"""The enforcer's Kafka shell on the real broker: producers with another partitioner, broker
time against future-stamped events, and restore that never stalls owned partitions."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.engine.forward import murmur2_partition
from sessionwarden.sdk.publisher import AuthEventPublisher, to_wire
from tests.integration.harness import (
    FAST_POLICY,
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    open_changelog_transaction,
    parse_ts,
    wait_until,
)

PARTITIONS = 3


def user_on(partition: int, crc32_elsewhere: bool = False) -> str:
    """A user id whose murmur2 partition is ``partition`` (and whose CRC32 one is not)."""
    for n in range(10_000):
        user = f"user-{n}"
        key = user.encode()
        if murmur2_partition(key, PARTITIONS) != partition:
            continue
        if crc32_elsewhere and zlib.crc32(key) % PARTITIONS == partition:
            continue
        return user
    raise AssertionError("no such user")


def test_a_crc32_partitioning_producer_keeps_its_session_alive(
    settings_factory: Callable[..., Settings],
) -> None:
    """librdkafka's default partitioner (CRC32) puts the activity on another partition than
    the login; the enforcer forwards it, so activity past the 3 s idle timeout (inside the 8 s
    absolute one) keeps the session alive."""
    settings = settings_factory(partitions=PARTITIONS)
    user = user_on(0, crc32_elsewhere=True)
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    crc32 = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "partitioner": "consistent_random",  # librdkafka's default, CRC32
            "log_level": 3,
        }
    )
    with EnforcerProcess(settings) as proc:
        proc.wait_assigned()
        start = time.time()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("crc-1", user, start))  # medium: idle 3 s
        last = start
        while last < start + 4:
            wait_until(lambda last=last: time.time() >= last + 1, 5, "the next activity")
            last = time.time()
            key, value = to_wire(activity_doc("crc-1", user, last))
            crc32.produce(settings.topics.input, value, key, headers=[("client_id", b"crc-svc")])
            assert 0 == crc32.flush(10)
            assert not revocations.docs(session_id="crc-1"), "revoked during activity"
        rows = wait_until(lambda: revocations.docs(session_id="crc-1"), 15, "the idle revocation")
        forwarded = [
            m for m in proc.messages() if m.get("msg", "").startswith("record on the wrong")
        ]
    revocations.close()
    assert "idle_timeout" == rows[0]["reason"]
    assert pytest.approx(last + 3, abs=0.5) == parse_ts(rows[0]["effective_at"])
    assert 1 == len(forwarded), "logged once per producer"
    assert "client crc-svc" == forwarded[0]["producer"]
    assert "murmur2_random" in forwarded[0]["hint"]


def slow_policy(tmp_path: Path) -> Path:
    """Idle 10 s and a 60 s skew tolerance: time for a backlog to build."""
    text = FAST_POLICY.read_text()
    text = text.replace('clock_skew_tolerance = "30s"', 'clock_skew_tolerance = "60s"')
    text = text.replace('idle = "3s"\nabsolute = "8s"', 'idle = "10s"\nabsolute = "120s"')
    path = tmp_path / "slow.toml"
    path.write_text(text)
    return path


def test_a_future_stamped_event_in_a_backlog_does_not_fire_deadlines_early(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """While the enforcer is down a backlog builds: a login, 8 s later an event stamped 50 s
    ahead (inside the tolerance), then activity on the login. Read one record per batch after
    the login's first idle deadline, the future stamp must not prove the partition read past
    that deadline before the activity behind it is read (deadlines follow broker time)."""
    settings = settings_factory(partitions=PARTITIONS)
    start = time.time()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        pub.publish(login_doc("backlog-x", "u-backlog", start))  # idle deadline start + 10
        pub.flush()
        wait_until(lambda: time.time() >= start + 8, 10, "the backlog to age")
        pub.publish(login_doc("backlog-y", "u-backlog", start + 50))  # a clock far ahead
        pub.flush()
        active = time.time()
        pub.publish(activity_doc("backlog-x", "u-backlog", active))  # deadline active + 10
    wait_until(lambda: time.time() >= start + 11, 15, "the login's first deadline to pass")
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    with EnforcerProcess(
        settings, policy=slow_policy(tmp_path), SESSIONWARDEN_BATCH_SIZE="1"
    ) as proc:
        proc.wait_assigned()
        rows = wait_until(
            lambda: revocations.timed(session_id="backlog-x"), 30, "the idle revocation"
        )
    revocations.close()
    seen, doc = rows[0]
    assert "idle_timeout" == doc["reason"]
    assert pytest.approx(active + 10, abs=0.01) == parse_ts(doc["effective_at"])
    assert seen >= active + 10


def test_owned_partitions_keep_firing_while_another_partition_restores(
    settings_factory: Callable[..., Settings],
) -> None:
    """A dead instance's open transaction on changelog partition 1 stalls its restore (read
    committed). Partition 0 is owned meanwhile and fires its deadline; partition 1 processes
    nothing until its restore completes."""
    settings = settings_factory(partitions=PARTITIONS)
    zombie = open_changelog_transaction(settings, partition=1)
    owned, restoring = user_on(0), user_on(1)
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    with EnforcerProcess(settings) as proc:
        proc.wait_assigned()  # partitions 0 and 2 restored; 1 still restoring
        now = time.time()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("owned-1", owned, now))  # idle 3 s
            pub.publish(login_doc("restoring-1", restoring, now))
        wait_until(lambda: revocations.docs(session_id="owned-1"), 15, "the owned revocation")

        def restored(p: int) -> bool:
            return any(
                m.get("msg") == "partitions assigned and restored" and p in m["partitions"]
                for m in proc.messages()
            )

        assert not restored(1), "partition 1 restored through an open transaction"
        assert restored(0)
        assert not audit.docs(session_id="restoring-1"), "input of a restoring partition read"
        zombie.abort_transaction(30)
        wait_until(lambda: restored(1), 30, "partition 1 restored once the transaction ended")
        wait_until(lambda: audit.docs(session_id="restoring-1"), 15, "partition 1's input")
    revocations.close()
    audit.close()


def test_an_instance_fenced_by_another_with_its_id_exits_with_a_clear_line(
    settings_factory: Callable[..., Settings],
) -> None:
    """Two replicas given one instance id fence each other; one of them exits non-zero (with
    code 3 and a line naming the cause) instead of both running on, and the other enforces."""
    settings = settings_factory(partitions=PARTITIONS)
    first = EnforcerProcess(settings, instance_id="dup")
    second: EnforcerProcess | None = None
    try:
        first.wait_assigned()
        second = EnforcerProcess(settings, instance_id="dup")
        pair = (first, second)

        def one_exited() -> list[EnforcerProcess]:
            return [p for p in pair if p.proc.poll() is not None]

        exited = wait_until(one_exited, 120, "one of the two to exit")
        assert 1 == len(exited)
        gone = exited[0]
        survivor = second if gone is first else first
        assert 3 == gone.proc.returncode, gone.log()
        fenced = [m for m in gone.messages() if m.get("msg", "").startswith("fenced:")]
        assert fenced, gone.log()
        assert "SESSIONWARDEN_INSTANCE_ID" in fenced[0]["msg"]
        assert "Traceback" not in gone.log()
        revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("after-fence", "u-fence", time.time()))
        wait_until(lambda: revocations.docs(session_id="after-fence"), 30, "enforcement")
        revocations.close()
        assert survivor.proc.poll() is None, survivor.log()
    finally:
        first.stop()
        if second is not None:
            second.stop()
