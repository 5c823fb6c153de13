"""The PostgreSQL sink between the real broker and a real server: a revoked session's queries
are refused and its running query is cut off, and a killed sink loses and doubles nothing."""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from psycopg.conninfo import make_conninfo

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import decode_revocation_record, encode, encode_dict
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.sdk.pg_guard import session_tag, session_transaction
from sessionwarden.testing.pg_sandbox import Sandbox, refused
from tests.integration.harness import (
    Collector,
    login_doc,
    logout_doc,
    wait_until,
)
from tests.pg import SHIPPED_POLICY, SinkProcess, enforcer_and_sink, running
from tests.unit.sdk.fakes import revalidation, revocation


def publish(settings: Settings, *docs: dict[str, Any]) -> None:
    p = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
    for doc in docs:
        p.produce(settings.topics.input, encode_dict(doc), doc["user_id"].encode())
    assert 0 == p.flush(10)


def test_query_of_a_session_is_refused_after_the_enforcer_revokes_it(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """End to end: login -> idle deadline -> revocation on Kafka -> the database refuses."""
    settings = settings_factory()
    sid = f"pg-{uuid.uuid4().hex[:8]}"
    collector = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    try:
        with (
            enforcer_and_sink(settings, pg_sandbox) as sink,
            psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as app,
        ):
            publish(settings, login_doc(sid, "u1", time.time()))
            assert not refused(app, "acme", sid)  # live: the guard lets it through
            wait_until(lambda: collector.docs(session_id=sid), 30, "the revocation on Kafka")
            wait_until(lambda: refused(app, "acme", sid), 30, "the database to refuse the session")
            assert not refused(app, "acme", "another-session")
            assert 0 == sink.proc.poll() or sink.proc.poll() is None
    finally:
        collector.close()
    with psycopg.connect(pg_sandbox.sink_dsn) as db:
        rows = db.execute(
            "SELECT tenant, session_id, user_id, reason, records"
            " FROM sessionwarden.revoked_sessions"
        ).fetchall()
    assert [("acme", sid, "u1", "idle_timeout", 1)] == rows


def test_running_query_of_a_revoked_session_is_cut_off(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """A statement already running when the session is revoked is cancelled by the sink."""
    settings = settings_factory()
    sid = f"pg-{uuid.uuid4().hex[:8]}"
    outcome: list[BaseException | None] = []

    def long_query() -> None:
        with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
            try:
                with session_transaction(conn, "acme", sid) as cur:
                    cur.execute("SELECT count(*) FROM app.documents, pg_sleep(120)")
                outcome.append(None)
            except psycopg.Error as exc:
                outcome.append(exc)

    with enforcer_and_sink(settings, pg_sandbox, SHIPPED_POLICY, SHIPPED_POLICY) as sink:
        publish(settings, login_doc(sid, "u1", time.time()))
        worker = threading.Thread(target=long_query, daemon=True)
        worker.start()
        tag = "swt:" + session_tag("acme", sid)
        wait_until(lambda: running(pg_sandbox, tag), 30, "the long query to run")
        publish(settings, logout_doc(sid, "u1", time.time()))
        wait_until(lambda: outcome, 60, "the long query to be cut off")
        cut = [m for m in sink.messages() if m.get("msg") == "backends of revoked sessions cut off"]
    assert [psycopg.errors.QueryCanceled] == [type(e) for e in outcome]
    assert [1] == [m["cancelled"] for m in cut]


def test_cursor_of_a_revoked_session_returns_nothing_once_the_sink_cut_it_off(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """A server-side cursor opened before the revocation, its backend renamed to hide, stops
    returning rows when the sink commits the revocation: the sink finds the transaction by the
    mark the guard left and terminates it."""
    settings = settings_factory()
    sid = f"pg-{uuid.uuid4().hex[:8]}"
    pg_sandbox.add_documents("acme", *(f"doc {n}" for n in range(50)))
    now = datetime.now(UTC)
    with (
        SinkProcess(settings, pg_sandbox.sink_dsn, SHIPPED_POLICY) as sink,
        psycopg.connect(pg_sandbox.app_dsn) as conn,
    ):
        sink.wait_assigned()
        leaked: list[Any] = []
        with contextlib.suppress(psycopg.OperationalError), session_transaction(conn, "acme", sid):
            reader = conn.cursor("reader")
            reader.execute("SELECT id FROM app.documents ORDER BY id")
            assert 10 == len(reader.fetchmany(10))
            conn.execute("SELECT set_config('application_name', 'innocent', true)")
            p = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
            record = revocation(sid, tenant="acme", effective_at=now, emitted_at=now)
            p.produce(settings.topics.revocations, encode(record), sid.encode())
            assert 0 == p.flush(10)
            wait_until(
                lambda: any(
                    m.get("msg") == "backends of revoked sessions cut off" for m in sink.messages()
                ),
                60,
                "the sink to cut the session off",
            )
            leaked = reader.fetchmany(10)
        cut = [m for m in sink.messages() if m.get("msg") == "backends of revoked sessions cut off"]
    assert [] == leaked
    assert [(0, 1, 1)] == [(m["cancelled"], m["terminated"], m["pass"]) for m in cut]


def test_cursor_kept_alive_by_a_savepoint_is_ended_by_the_second_pass(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """The sink's cancel ends only a savepoint's statement; the client rolls back to the
    savepoint and reads its cursor on, until the second pass, half a second later, terminates
    the backend."""
    settings = settings_factory()
    sid = f"pg-{uuid.uuid4().hex[:8]}"
    pg_sandbox.add_documents("acme", "one", "two")
    reads_after_cancel: list[float] = []  # monotonic times of rows read after the cancel
    ended: list[float] = []

    def reader_thread() -> None:
        with (
            psycopg.connect(pg_sandbox.app_dsn) as conn,
            contextlib.suppress(psycopg.OperationalError),
            session_transaction(conn, "acme", sid),
        ):
            reader = conn.cursor("reader", scrollable=True)
            reader.execute("SELECT id FROM app.documents")
            reader.fetchone()
            with contextlib.suppress(psycopg.errors.QueryCanceled), conn.transaction():
                conn.execute("SELECT pg_sleep(120)")
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:
                    reader.scroll(0, mode="absolute")
                    if reader.fetchone() is not None:
                        reads_after_cancel.append(time.monotonic())
            finally:
                ended.append(time.monotonic())

    with SinkProcess(settings, pg_sandbox.sink_dsn, SHIPPED_POLICY) as sink:
        sink.wait_assigned()
        worker = threading.Thread(target=reader_thread, daemon=True)
        worker.start()
        wait_until(lambda: running(pg_sandbox, "swt:" + session_tag("acme", sid)), 30, "sleep")
        now = datetime.now(UTC)
        p = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
        record = revocation(sid, tenant="acme", effective_at=now, emitted_at=now)
        p.produce(settings.topics.revocations, encode(record), sid.encode())
        assert 0 == p.flush(10)
        worker.join(60)

        def cut_off() -> list[tuple[int, int, int]]:
            return [
                (m["cancelled"], m["terminated"], m["pass"])
                for m in sink.messages()
                if m.get("msg") == "backends of revoked sessions cut off"
            ]

        wait_until(lambda: len(cut_off()) >= 2, 30, "the sink to log both passes")
        cut = cut_off()
    assert not worker.is_alive()
    assert [(1, 0, 1), (0, 1, 2)] == cut
    assert reads_after_cancel, "the savepoint kept the cursor readable after the cancel"
    window = ended[0] - reads_after_cancel[0]
    print(f"cursor readable for {window:.3f} s after the cancel")
    assert window < 2.0  # the second pass runs 0.5 s after the first


def test_sink_restarted_after_a_commit_cuts_off_what_it_had_not(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """A sink stopped between committing a revocation and cutting its session off (here: run
    without the cut-off) leaves the session's cursor readable; the next sink's start ends it."""
    settings = settings_factory()
    sid = f"pg-{uuid.uuid4().hex[:8]}"
    pg_sandbox.add_documents("acme", *(f"doc {n}" for n in range(50)))
    now = datetime.now(UTC)
    leaked: list[Any] = []
    with (
        psycopg.connect(pg_sandbox.app_dsn) as conn,
        contextlib.suppress(psycopg.OperationalError),
        session_transaction(conn, "acme", sid),
    ):
        reader = conn.cursor("reader")
        reader.execute("SELECT id FROM app.documents ORDER BY id")
        assert 10 == len(reader.fetchmany(10))
        with SinkProcess(
            settings, pg_sandbox.sink_dsn, SHIPPED_POLICY, SESSIONWARDEN_PG_CUT_OFF="false"
        ) as sink:
            sink.wait_assigned()
            p = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
            record = revocation(sid, tenant="acme", effective_at=now, emitted_at=now)
            p.produce(settings.topics.revocations, encode(record), sid.encode())
            assert 0 == p.flush(10)
            wait_until(lambda: stored_sessions(pg_sandbox) == [sid], 60, "the row to be stored")
        assert 10 == len(reader.fetchmany(10))  # no cut-off ran: the cursor still reads
        with SinkProcess(settings, pg_sandbox.sink_dsn, SHIPPED_POLICY) as sink:
            sink.wait_assigned()
            wait_until(
                lambda: any(
                    m.get("msg") == "backends of revoked sessions cut off" for m in sink.messages()
                ),
                60,
                "the restarted sink to cut the session off",
            )
            leaked = reader.fetchmany(10)
    assert [] == leaked


def stored_sessions(box: Sandbox) -> list[str]:
    with psycopg.connect(box.sink_dsn) as conn:
        rows = conn.execute("SELECT session_id FROM sessionwarden.revoked_sessions").fetchall()
    return [str(r[0]) for r in rows]


def fill_revocation_topic(settings: Settings, seed: int = 7) -> int:
    """Revocations of three tenants' sessions (some revoked twice, the same session id under
    three tenants), revalidations and garbage, under keys of no format the sink could read."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    at = {"effective_at": now, "emitted_at": now}
    p = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 20, "log_level": 3}
    )
    produced = 0
    for n in range(12_000):
        tenant = f"t{n % 3}"
        sid = f"s{n // 3}"  # the same id under three tenants
        key = f"{rng.getrandbits(32):08x}|{tenant}|{sid}".encode()  # one partition per session
        records: list[bytes] = [encode(revocation(sid, tenant=tenant, **at))]
        if n % 10 == 0:
            records.append(encode(revocation(sid, reason="logout", tenant=tenant, **at)))
        if n % 97 == 0:
            records.append(encode(revalidation(sid)))
        if n % 1000 == 0:
            records.append(b'{"type": "revocation", "garbage": true}')
        for value in records:
            p.produce(settings.topics.revocations, value, key)
            produced += 1
        if n % 2000 == 0:
            p.poll(0)
    assert 0 == p.flush(30)
    return produced


def topic_truth(
    settings: Settings,
) -> tuple[dict[tuple[str, str], tuple[int, str, int, int]], dict[int, int]]:
    """From the topic itself: per (tenant, session) its revocation count, last reason and last
    (partition, offset); and the end offset of every partition."""
    topic = settings.topics.revocations
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"truth-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts
    }
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    counts: Counter[tuple[str, str]] = Counter()
    last: dict[tuple[str, str], tuple[str, int, int]] = {}
    read = dict.fromkeys(parts, 0)
    deadline = time.monotonic() + 60
    while any(read[p] < ends[p] for p in parts) and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            if msg.error() is not None:
                continue
            read[msg.partition()] = msg.offset() + 1
            try:
                record = decode_revocation_record(msg.value())
            except Exception:
                continue
            if isinstance(record, Revocation):
                key = (record.tenant, record.session_id)
                counts[key] += 1
                last[key] = (record.reason, msg.partition(), msg.offset())
    consumer.close()
    truth = {k: (counts[k], *last[k]) for k in counts}
    return truth, ends


def test_killed_sink_restarts_and_loses_nothing_and_doubles_nothing(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """SIGKILL mid-stream, restart: the table equals the topic (offsets live with the rows)."""
    settings = settings_factory()
    produced = fill_revocation_topic(settings)
    db = psycopg.connect(pg_sandbox.sink_dsn, autocommit=True)

    def stored() -> int:
        row = db.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM sessionwarden.sink_offsets"
        ).fetchone()
        assert row is not None
        return int(row[0])

    first = SinkProcess(
        settings, pg_sandbox.sink_dsn, SHIPPED_POLICY, SESSIONWARDEN_PG_BATCH_SIZE="50"
    )
    try:
        first.wait_assigned()
        wait_until(lambda: stored() >= produced // 10, 60, "the sink to store some batches")
        first.kill()
    finally:
        first.stop()
    at_kill = stored()
    assert at_kill < produced, "the sink finished before it was killed: not mid-stream"
    truth, ends = topic_truth(settings)
    with SinkProcess(settings, pg_sandbox.sink_dsn, SHIPPED_POLICY) as second:
        second.wait_assigned()
        wait_until(lambda: stored() == sum(ends.values()), 120, "the sink to reach the end")
    rows = db.execute(
        "SELECT tenant, session_id, records, reason, source_partition, source_offset"
        " FROM sessionwarden.revoked_sessions"
    ).fetchall()
    offsets = db.execute("SELECT partition, next_offset FROM sessionwarden.sink_offsets").fetchall()
    db.close()
    assert truth == {(t, s): (n, r, p, o) for t, s, n, r, p, o in rows}
    assert ends == dict(offsets)
    assert 13_200 == sum(n for n, *_ in truth.values())  # every 10th session twice


def test_missing_revocation_topic_is_one_clear_message(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """A sink pointed at a cluster without the product's topics says what to run, exits 2."""
    settings = settings_factory(provision=False)
    sink = SinkProcess(settings, pg_sandbox.sink_dsn)
    assert 2 == sink.proc.wait(60)
    sink.stop()
    servers = settings.kafka.bootstrap_servers
    expected = (
        f"sessionwarden: no topic {settings.topics.revocations} on {servers}:"
        " run `sessionwarden topics create` (and the enforcer)"
    )
    assert expected == sink.lines[-1]


def test_a_backend_the_sink_may_not_signal_neither_stops_it_nor_its_restart(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """A superuser's backend named for a revoked session: the server refuses the sink's
    signal. The sink counts it, ends the other backend of the session, writes the next
    revocations, and starts again over the same revocation set (its start-up cut-off)."""
    settings = settings_factory()
    sid, later = f"pg-{uuid.uuid4().hex[:8]}", f"pg-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    superuser = make_conninfo(pg_sandbox.admin_dsn, dbname=pg_sandbox.name)
    p = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})

    def revoke(session_id: str) -> None:
        record = revocation(session_id, tenant="acme", effective_at=now, emitted_at=now)
        p.produce(settings.topics.revocations, encode(record), session_id.encode())
        assert 0 == p.flush(10)

    def stored() -> set[str]:
        with psycopg.connect(pg_sandbox.sink_dsn) as db:
            rows = db.execute("SELECT session_id FROM sessionwarden.revoked_sessions")
            return {str(r[0]) for r in rows.fetchall()}

    with (
        psycopg.connect(superuser, autocommit=True) as su,
        psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as victim,
    ):
        su.execute(
            "SELECT set_config('application_name', %s, false)", ("swc:" + session_tag("acme", sid),)
        )
        victim.execute("BEGIN")
        victim.execute("SELECT sessionwarden.bind('acme', %s)", (sid,))
        with SinkProcess(settings, pg_sandbox.sink_dsn, SHIPPED_POLICY) as sink:
            sink.wait_assigned()
            revoke(sid)
            wait_until(lambda: sid in stored(), 60, "the revocation in the database")
            wait_until(
                lambda: any("may not signal" in str(m.get("msg")) for m in sink.messages()),
                30,
                "the refused signal to be reported",
            )
            revoke(later)
            wait_until(lambda: later in stored(), 60, "the next revocation in the database")
            assert sink.proc.poll() is None
            cut = [
                m for m in sink.messages() if m.get("msg") == "backends of revoked sessions cut off"
            ]
        with SinkProcess(settings, pg_sandbox.sink_dsn, SHIPPED_POLICY) as again:
            again.wait_assigned()  # the start-up cut-off refused the same signal, and went on
            assert again.proc.poll() is None
        alive = su.execute("SELECT 1").fetchone()
        with contextlib.suppress(psycopg.Error):
            victim.execute("SELECT 1")
        victim_ended = victim.closed or victim.broken
    assert ((1,), True) == (alive, victim_ended)
    assert 1 == sum(m["terminated"] for m in cut if m["pass"] == 1)
