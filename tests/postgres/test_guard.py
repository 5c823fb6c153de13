"""The row-level guard and the sink's store on a real PostgreSQL server, queried as the service's
role (neither superuser nor owner), with revocations written by the sink's role."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.postgres import NOTIFY_CHANNEL, session_tag
from sessionwarden.sdk.pg_guard import (
    async_session_transaction,
    bind_connection,
    is_refused,
    session_transaction,
)
from sessionwarden.sink.postgres.plan import RawRecord, plan_batch
from sessionwarden.sink.postgres.store import OffsetConflict, RevocationStore
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.integration.harness import wait_until
from tests.pg import running
from tests.unit.sdk.fakes import at, revocation

TOPIC = "t.sessionwarden.revocations"
KEEP = timedelta(hours=1)


@pytest.fixture
def store(pg_sandbox: Sandbox) -> Iterator[RevocationStore]:
    with psycopg.connect(pg_sandbox.sink_dsn, autocommit=True) as conn:
        yield RevocationStore(conn, TOPIC)


@pytest.fixture
def app(pg_sandbox: Sandbox) -> Iterator[psycopg.Connection[Any]]:
    with (
        psycopg.connect(pg_sandbox.owner_dsn, autocommit=True) as owner,
        session_transaction(owner, "acme", "owner") as cur,
    ):
        cur.execute(
            "INSERT INTO app.documents (tenant, body) SELECT 'acme', 'doc ' || n"
            " FROM generate_series(1, 1000) AS n"
        )
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        yield conn


def revoke(
    store: RevocationStore,
    *sessions: tuple[str, str],
    offset: int = 0,
    reason: str = "idle_timeout",
) -> None:
    """Store revocations of (tenant, session) as the sink would, at partition 0."""
    seen = store.offsets([0])
    records = [
        RawRecord(0, seen[0] + i, encode(revocation(sid, 0, reason, tenant=tenant)))
        for i, (tenant, sid) in enumerate(sessions)
    ]
    store.write(plan_batch(records, at(1), KEEP), seen)


def count_docs(conn: psycopg.Connection[Any], tenant: str, sid: str) -> int:
    with session_transaction(conn, tenant, sid) as cur:
        row = cur.execute("SELECT count(*) FROM app.documents").fetchone()
    assert row is not None
    return int(row[0])


def test_async_binding_reads_until_revoked(pg_sandbox: Sandbox, store: RevocationStore) -> None:
    """The asyncio helper binds the same way (psycopg's AsyncConnection)."""

    async def count(sid: str) -> int:
        conn = await psycopg.AsyncConnection.connect(pg_sandbox.app_dsn)
        async with conn, async_session_transaction(conn, "acme", sid) as cur:
            await cur.execute("SELECT count(*) FROM app.documents")
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    assert 0 == asyncio.run(count("s1"))
    revoke(store, ("acme", "s1"))
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        asyncio.run(count("s1"))


def test_unbound_query_is_refused(app: psycopg.Connection[Any]) -> None:
    """A statement outside any session is refused, not silently answered."""
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="no session"):
        app.execute("SELECT count(*) FROM app.documents")


def test_bound_session_reads_until_revoked_then_is_refused(
    app: psycopg.Connection[Any], store: RevocationStore
) -> None:
    """The guard lets a live session through and refuses it once its revocation is stored."""
    assert 1000 == count_docs(app, "acme", "s1")
    revoke(store, ("acme", "s1"))
    with pytest.raises(psycopg.Error) as refused:
        count_docs(app, "acme", "s1")
    assert is_refused(refused.value)
    assert "revoked (idle_timeout)" in str(refused.value)
    assert 1000 == count_docs(app, "acme", "s2")
    assert 1000 == count_docs(app, "other", "s1")  # identity is (tenant, session)


def test_a_session_ended_on_an_identity_signal_is_refused_for_it(
    app: psycopg.Connection[Any], store: RevocationStore
) -> None:
    """Reason ``signal`` is stored and named in the refusal like any other reason."""
    revoke(store, ("acme", "s1"), reason="signal")
    with pytest.raises(psycopg.Error) as refused:
        count_docs(app, "acme", "s1")
    assert is_refused(refused.value)
    assert "revoked (signal)" in str(refused.value)


def test_statements_after_a_revocation_in_an_open_transaction_are_refused(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """The policy itself refuses reads and writes once the revocation commits, mid-transaction."""
    with (
        psycopg.connect(pg_sandbox.app_dsn) as conn,
        session_transaction(conn, "acme", "s1") as cur,
    ):
        cur.execute("INSERT INTO app.documents (tenant, body) VALUES ('acme', 'x')")
        revoke(store, ("acme", "s1"))
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            cur.execute(
                "SAVEPOINT a; INSERT INTO app.documents (tenant, body) VALUES ('acme', 'y')"
            )
        cur.execute("ROLLBACK TO SAVEPOINT a")
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
            cur.execute("SELECT * FROM app.documents")


def test_binding_a_revoked_session_fails_even_for_a_statement_touching_no_row(
    app: psycopg.Connection[Any], store: RevocationStore
) -> None:
    """The helper asks the guard at bind time: nothing of a revoked session's transaction runs."""
    revoke(store, ("acme", "s1"))
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):  # noqa: SIM117
        with session_transaction(app, "acme", "s1") as cur:
            cur.execute("SELECT * FROM app.documents WHERE id < 0")


def test_guard_is_evaluated_once_per_statement(
    pg_sandbox: Sandbox, app: psycopg.Connection[Any]
) -> None:
    """The policy's guard is an init plan: one call for a statement over 1000 rows."""
    with psycopg.connect(pg_sandbox.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER ROLE {} SET track_functions = 'pl'").format(
                sql.Identifier(f"{pg_sandbox.name}_app")
            )
        )
    calls = "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions"
    with psycopg.connect(pg_sandbox.app_dsn) as conn, session_transaction(conn, "acme", "s") as cur:
        before = cur.execute(calls).fetchone()
        rows = cur.execute("SELECT id FROM app.documents").fetchall()
        after = cur.execute(calls).fetchone()
        plan = "\n".join(r[0] for r in cur.execute("EXPLAIN SELECT * FROM app.documents"))
    assert 1000 == len(rows)
    assert before is not None and after is not None
    assert 1 == after[0] - before[0]
    assert "InitPlan" in plan, plan


def test_binding_ends_with_the_transaction(app: psycopg.Connection[Any]) -> None:
    """A pooled connection never carries a session to the next transaction."""
    assert 1000 == count_docs(app, "acme", "s1")
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        app.execute("SELECT count(*) FROM app.documents")
    row = app.execute("SELECT current_setting('application_name')").fetchone()
    assert row is not None and not row[0].startswith("sw")


def test_service_role_cannot_read_or_forge_the_revocation_set(
    app: psycopg.Connection[Any],
) -> None:
    """Only the sink's role touches the table; services go through the guard."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("SELECT * FROM sessionwarden.revoked_sessions")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("DELETE FROM sessionwarden.revoked_sessions")


def test_running_query_of_a_revoked_session_is_cancelled(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """A statement that passed the guard before the revocation is stopped by the cut-off."""
    errors: list[BaseException] = []

    def long_query() -> None:
        with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
            try:
                with session_transaction(conn, "acme", "s1") as cur:
                    cur.execute("SELECT count(*) FROM app.documents, pg_sleep(60)")
            except psycopg.Error as exc:
                errors.append(exc)
            assert 0 == count_docs(conn, "acme", "s2")  # the connection itself still serves

    worker = threading.Thread(target=long_query)
    worker.start()
    tag = "swt:" + session_tag("acme", "s1")
    wait_until(lambda: running(pg_sandbox, tag), 30, "the long query to start")
    revoke(store, ("acme", "s1"))
    assert (1, 0) == store.cut_off([session_tag("acme", "s1")])
    worker.join(30)
    assert not worker.is_alive()
    assert [psycopg.errors.QueryCanceled] == [type(e) for e in errors]


def test_dedicated_connection_of_a_revoked_session_is_terminated(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """A connection bound to one session for its life is closed, not merely interrupted."""
    conn = psycopg.connect(pg_sandbox.app_dsn, autocommit=True)
    bind_connection(conn, "acme", "s1")
    assert conn.execute("SELECT count(*) FROM app.documents").fetchone() == (0,)
    revoke(store, ("acme", "s1"))
    assert (0, 1) == store.cut_off([session_tag("acme", "s1")])
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()


def test_commit_notifies_the_revoked_sessions_tags(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """Applications holding connections hear of a revocation when it commits."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        revoke(store, ("acme", "s1"), ("acme", "s2"))
        got = [n.payload for n in listener.notifies(timeout=10, stop_after=2)]
    assert sorted(session_tag("acme", s) for s in ("s1", "s2")) == sorted(got)


def test_stale_offsets_roll_the_whole_batch_back(store: RevocationStore) -> None:
    """A sink whose partition moved under it writes nothing: rows and offsets stay together."""
    revoke(store, ("acme", "s1"))
    batch = plan_batch([RawRecord(0, 1, encode(revocation("s2", 0)))], at(1), KEEP)
    with pytest.raises(OffsetConflict):
        store.write(batch, {0: 0})
    rows = store.conn.execute("SELECT session_id FROM sessionwarden.revoked_sessions").fetchall()
    assert [("s1",)] == rows
    assert {0: 1} == store.offsets([0])


def test_prune_deletes_only_rows_past_keep_until(store: RevocationStore) -> None:
    """Rows stay until their keep_until has passed, then go."""
    revoke(store, ("acme", "s1"))  # effective at(0)
    assert 0 == store.prune(at(0) + KEEP - timedelta(seconds=1))
    assert 1 == store.prune(at(0) + KEEP)
    assert [] == store.conn.execute("SELECT * FROM sessionwarden.revoked_sessions").fetchall()
