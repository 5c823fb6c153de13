"""A producer that may only write auth.events floods it with the worst records the broker lets
through; every due revocation still arrives on time, and the flood is dead-lettered.

Also: a record keyed by anything but its user_id is dead-lettered (every event type), so
routing and state can never disagree silently.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import MAX_RECORD_BYTES, encode_dict
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import (
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    logout_doc,
    parse_ts,
    role_change_doc,
    wait_until,
)

FLOOD_RECORDS = 3000
SESSIONS = 30
LATENCY_P99_S = 1.0  # the enforcer's due-revocation bound (docs/ARCHITECTURE.md)


def _fill(doc: dict[str, Any], make: Callable[[int], tuple[str, Any]]) -> bytes:
    """``doc`` plus generated members until one more would pass the decoder's 64 KB limit."""
    data = orjson.dumps(doc)
    size = len(data)
    i = 0
    while True:
        key, value = make(i)
        extra = len(orjson.dumps({key: value})) - 1  # '"k":v' plus a comma
        if size + extra > MAX_RECORD_BYTES:
            return orjson.dumps(doc)
        doc[key] = value
        size += extra
        i += 1


def hostile_records(user: str) -> list[bytes]:
    """The shapes that cost a decoder most, each as large as auth.events accepts."""
    now = time.time()
    base = login_doc(f"flood-{uuid.uuid4().hex[:8]}", user, now)
    unknown_keys = _fill(dict(base), lambda i: (f"{i:x}", 0))  # the field's shape: ~7,700 keys
    untyped = _fill({k: v for k, v in base.items() if k != "type"}, lambda i: (f"{i:x}", i))
    activity = _fill(activity_doc("s", user, now), lambda i: (f"k{i:x}", [i]))
    # Known keys only, arrays at their limit of long strings, and a duplicate key: the most
    # parsing and the duplicate-key slow path.
    dup = dict(base)
    dup["permissions"] = ["p\\u003a" + "x" * 500 for _ in range(100)]
    duplicate = orjson.dumps(dup)[:-1] + b',"user_id":"' + user.encode() + b'"}'
    nested = orjson.dumps({**base, "roles": [[[[[[i]]]]] for i in range(256)]})
    # One key: a 64 KB array of numbers must be parsed before its length is known.
    wide = orjson.dumps(
        {**base, "roles": [0] * ((MAX_RECORD_BYTES - len(orjson.dumps(base))) // 2)}
    )
    # A long string first hides the key count from the decoder's 2 KiB shortcut.
    hidden = _fill({"pad": "x" * 4096, **base}, lambda i: (f"{i:x}", 0))
    return [unknown_keys, untyped, activity, duplicate, nested, wide, hidden]


class Flood:
    """Produces hostile records zstd-compressed (the broker's size limit is on compressed
    batches) from a thread, as fast as the broker takes them."""

    def __init__(self, settings: Settings, records: list[bytes], count: int, user: str) -> None:
        self.errors: list[str] = []
        self.sent = 0
        self.finished_at = 0.0
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "compression.type": "zstd",
                "linger.ms": 20,
                "batch.size": 400_000,  # uncompressed; compressed batches stay under 68 KiB
                "message.max.bytes": 8 * 1024 * 1024,
                "partitioner": "murmur2_random",
                "log_level": 3,
            }
        )
        self._topic = settings.topics.input
        self._records = records
        self._count = count
        self._user = user.encode()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(err.str())

    def _run(self) -> None:
        for i in range(self._count):
            record = self._records[i % len(self._records)]
            while True:
                try:
                    self._producer.produce(
                        self._topic, record, self._user, on_delivery=self._delivered
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self.sent += 1
            self._producer.poll(0)
        self._producer.flush(60)
        self.finished_at = time.time()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def test_flood_of_hostile_records_does_not_delay_due_revocations(
    settings_factory: Callable[..., Settings],
) -> None:
    """A producer allowed only to write auth.events cannot suppress or delay revocations: with
    3,000 records of up to 64 KB (thousands of unknown keys, zstd-compressed) arriving while
    sessions fall due, every due revocation arrives within 1 s (p99) of its deadline and every
    hostile record is dead-lettered."""
    settings = settings_factory()
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    dlq = Collector(settings.kafka.bootstrap_servers, settings.topics.dlq)
    flooder = "mallory"
    records = hostile_records(flooder)
    assert all(MAX_RECORD_BYTES - 600 < len(r) <= MAX_RECORD_BYTES for r in records[:3])
    with EnforcerProcess(settings) as enforcer:
        enforcer.wait_assigned()
        start = time.time()
        # Sessions in three waves, one a second: medium risk, idle 3 s, so they fall due at
        # start + 3, 4 and 5 s. The flood begins at start + 2.5 s and is still being appended
        # and read when they do.
        flood = Flood(settings, records, FLOOD_RECORDS, flooder)
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            for wave in range(3):
                wait_until(lambda w=wave: time.time() >= start + w, 5, "the next wave")
                for n in range(SESSIONS // 3):
                    pub.publish(login_doc(f"due-{wave}-{n}", f"user-{wave}-{n}", time.time()))
                pub.flush()
        wait_until(lambda: time.time() >= start + 2.5, 5, "the flood's start")
        flood.start()
        flood.join(60)
        assert [] == flood.errors[:3]
        assert FLOOD_RECORDS == flood.sent
        rows = wait_until(
            lambda: revocations.timed() if len(revocations.docs()) >= SESSIONS else None,
            30,
            f"{SESSIONS} revocations",
        )
        letters = wait_until(
            lambda: dlq.docs() if len(dlq.docs()) >= FLOOD_RECORDS else None,
            60,
            f"{FLOOD_RECORDS} dead letters",
        )
        log = enforcer.log()
        lettered = [t for t, _ in dlq.timed()]
    revocations.close()
    dlq.close()

    late = [seen - parse_ts(doc["effective_at"]) for seen, doc in rows]
    p50, p99, worst = statistics.median(late), percentile(late, 0.99), max(late)
    print(
        f"flood: {FLOOD_RECORDS} records appended from +2.5 s to "
        f"+{flood.finished_at - start:.2f} s; "
        f"due revocations late by p50 {p50:.3f} s, p99 {p99:.3f} s, max {worst:.3f} s; "
        f"{len(letters)} dead letters, the last at +{max(lettered) - start:.2f} s"
    )
    for seen, doc in sorted(rows, key=lambda r: parse_ts(r[1]["effective_at"])):
        deadline = parse_ts(doc["effective_at"])
        print(f"  {doc['session_id']}: due +{deadline - start:.2f} s, late {seen - deadline:.3f} s")
    assert SESSIONS == len({doc["session_id"] for _, doc in rows})
    assert {"idle_timeout"} == {doc["reason"] for _, doc in rows}
    assert p99 <= LATENCY_P99_S, f"p99 {p99:.3f} s (p50 {p50:.3f}, max {worst:.3f})"
    assert FLOOD_RECORDS == len(letters)
    assert {"schema_violation", "unknown_type"} >= {d["reason"] for d in letters}
    assert max(len(encode_dict(d)) for d in letters) < 8 * 1024
    assert "fenced" not in log and "cannot recover" not in log


def test_record_keyed_by_anything_but_its_user_id_is_dead_lettered(
    settings_factory: Callable[..., Settings],
) -> None:
    """Routing follows the key, state follows the record's user: a login keyed by session id
    and a role removal keyed by user id went to different partitions and the revocation was
    lost silently. Every event type with a wrong (or no) key is refused with its reason."""
    settings = settings_factory()
    dlq = Collector(settings.kafka.bootstrap_servers, settings.topics.dlq)
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    now = time.time()
    user = "u-keyed"
    wrong: list[tuple[bytes | None, dict[str, Any]]] = [
        (b"s-wrong", login_doc("s-wrong", user, now)),
        (b"s-ok", activity_doc("s-ok", user, now)),
        (b"s-ok", logout_doc("s-ok", user, now)),
        (b"someone-else", role_change_doc(user, now, removed=["viewer"])),
        (None, activity_doc("s-ok", user, now)),
        (b" u-keyed", activity_doc("s-ok", user, now)),
    ]
    with EnforcerProcess(settings) as enforcer:
        enforcer.wait_assigned()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("s-ok", user, now, roles=["viewer", "editor"]))
            pub.flush()
            for key, doc in wrong:
                pub.publish_raw(key, encode_dict(doc))
            pub.flush()
            # The correctly keyed role removal still revokes the correctly keyed login.
            pub.publish(role_change_doc(user, now + 0.1, removed=["viewer"]))
        letters = wait_until(
            lambda: dlq.docs() if len(dlq.docs()) >= len(wrong) else None,
            20,
            "a dead letter per wrongly keyed record",
        )
        revoked = wait_until(
            lambda: revocations.docs(session_id="s-ok", reason="permissions_revoked"),
            20,
            "the role removal's revocation",
        )
    dlq.close()
    revocations.close()

    assert len(wrong) == len(letters)
    assert {"key_mismatch"} == {d["reason"] for d in letters}
    types = sorted(orjson.loads(_b64(d["value_b64"]))["type"] for d in letters)
    assert ["activity", "activity", "activity", "login", "logout", "role_change"] == types
    assert any("no key" in d["detail"] for d in letters)
    assert 1 == len(revoked)


def test_an_enforcer_killed_in_the_middle_of_a_flood_is_restarted_and_gets_through_it(
    settings_factory: Callable[..., Settings],
) -> None:
    """A restart meets the backlog a crash left with the same budgets: it dead-letters every
    hostile record exactly once (what the killed one committed is not done again) and fires
    the sessions that fell due meanwhile."""
    settings = settings_factory()
    dlq = Collector(settings.kafka.bootstrap_servers, settings.topics.dlq)
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    flooder = "mallory"
    now = time.time()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        for n in range(6):
            pub.publish(login_doc(f"crash-{n}", f"user-crash-{n}", now))
    flood = Flood(settings, hostile_records(flooder), FLOOD_RECORDS, flooder)
    flood.start()
    flood.join(60)
    assert [] == flood.errors[:3]
    with EnforcerProcess(settings) as first:
        first.wait_assigned()
        wait_until(lambda: len(dlq.docs()) >= 300, 30, "the first dead letters")
        first.kill()
    with EnforcerProcess(settings) as second:
        second.wait_assigned()
        letters = wait_until(
            lambda: d if len(d := dlq.docs()) >= FLOOD_RECORDS else None,
            60,
            f"{FLOOD_RECORDS} dead letters",
        )
        revoked = wait_until(
            lambda: r if len(r := revocations.docs()) >= 6 else None, 30, "6 revocations"
        )
        assert second.proc.poll() is None, second.log()
        letters = dlq.docs()  # everything up to now: any duplicate would be among them
    dlq.close()
    revocations.close()

    offsets = [(d["source_partition"], d["source_offset"]) for d in letters]
    assert FLOOD_RECORDS == len(offsets) == len(set(offsets))
    assert 6 == len({d["session_id"] for d in revoked})


def test_a_dead_letter_the_broker_refuses_is_retried_alone_without_its_bytes(
    settings_factory: Callable[..., Settings],
) -> None:
    """A transaction that cannot commit (here: the DLQ refuses a dead letter as too large) is
    split until the offending record is alone, which is then dead-lettered with hashes only;
    the records around it are applied, and the enforcer never exits."""
    settings = settings_factory()
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    dlq_limit = ConfigResource(
        ResourceType.TOPIC,
        settings.topics.dlq,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "3000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([dlq_limit])[dlq_limit].result(30)
    dlq = Collector(settings.kafka.bootstrap_servers, settings.topics.dlq)
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    user = "u-wall"
    now = time.time()
    bad = orjson.dumps({**login_doc("s-bad", user, now), "pad": "x" * 60_000})
    with EnforcerProcess(settings) as enforcer:
        enforcer.wait_assigned()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            for n in range(10):
                pub.publish(login_doc(f"s-before-{n}", user, now))
            pub.publish_raw(user.encode(), bad)
            for n in range(10):
                pub.publish(login_doc(f"s-after-{n}", user, now))
        letter = wait_until(lambda: dlq.docs(), 60, "the dead letter, alone and bare")
        started = wait_until(
            lambda: s if len(s := audit.docs(type="session_started")) >= 20 else None,
            30,
            "every login around the bad record applied",
        )
        assert enforcer.proc.poll() is None, enforcer.log()[-2000:]
        log = enforcer.log()
    dlq.close()
    audit.close()

    assert 1 == len(letter)
    assert "" == letter[0]["value_b64"]
    assert f"[value truncated: {len(bad)} bytes, sha256 " in letter[0]["detail"]
    assert "schema_violation" == letter[0]["reason"]
    assert 20 == len({d["session_id"] for d in started})
    assert "batch aborted and rewound" in log


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
