"""The cut-off ends every backend still reading for a revoked session: a server-side cursor
opened before the revocation, a transaction left idle, a cancel that only ended a savepoint,
an application_name renamed to hide; and a WITH HOLD cursor cannot carry rows past the
binding at all. Queried as the service's role, revoked by the sink's."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from sessionwarden.contracts.postgres import session_tag
from sessionwarden.sdk.pg_guard import bind_connection, is_refused, session_transaction
from sessionwarden.sink.postgres.store import RevocationStore
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.integration.harness import wait_until
from tests.pg import running
from tests.postgres.revoking import QUERY, revoke


def tag(sid: str) -> str:
    return session_tag("acme", sid)


def rows_or_nothing(fetch: Callable[[], list[Any]]) -> list[Any]:
    """What a FETCH returns, or [] when the backend is gone (the cut-off terminated it)."""
    try:
        return fetch()
    except psycopg.OperationalError:
        return []


def test_named_cursor_opened_before_the_revocation_returns_nothing_after_the_cut_off(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """A server-side cursor's FETCH never asks the guard again: the cut-off must end the
    backend, idle in the session's transaction, where a cancel does nothing."""
    with (
        psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn,
        contextlib.suppress(psycopg.OperationalError),
        session_transaction(conn, "acme", "s1"),
    ):
        reader = conn.cursor("reader")
        reader.execute(QUERY)
        assert 10 == len(reader.fetchmany(10))
        revoke(store, "s1")
        cut = store.cut_off([tag("s1")])
        leaked = rows_or_nothing(lambda: reader.fetchmany(10))
    assert ([], (0, 1)) == (leaked, cut)


@pytest.mark.parametrize("declare", ["sql", "psycopg"])
def test_held_cursor_cannot_carry_rows_past_the_binding(
    pg_sandbox: Sandbox, store: RevocationStore, declare: str
) -> None:
    """A WITH HOLD cursor is computed at its commit and read later with no guard and, once
    the transaction has ended, no mark the cut-off can find: the guard refuses to fill one."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        held = conn.cursor("held", withhold=True)
        with pytest.raises(psycopg.Error) as refused:  # noqa: SIM117
            with session_transaction(conn, "acme", "s1") as cur:
                if declare == "sql":
                    cur.execute(f"DECLARE held CURSOR WITH HOLD FOR {QUERY}")
                else:
                    held.execute(QUERY)
        revoke(store, "s1")
        store.cut_off([tag("s1")])
        store.cut_off([tag("s1")], terminate_all=True)
        conn.execute("BEGIN")  # a transaction with no session bound
        try:
            leaked = conn.execute("FETCH ALL FROM held").fetchall()
        except psycopg.errors.InvalidCursorName:
            leaked = []
        conn.execute("ROLLBACK")
    assert [] == leaked
    assert is_refused(refused.value) and "WITH HOLD" in str(refused.value)


def test_an_open_held_cursor_blocks_guarded_reads_until_closed(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """A held cursor over other data may stay open, but no protected row is read meanwhile."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        conn.execute("DECLARE other CURSOR WITH HOLD FOR SELECT 1")
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="WITH HOLD"):  # noqa: SIM117
            with session_transaction(conn, "acme", "s1") as cur:
                cur.execute(QUERY)
        conn.execute("CLOSE other")
        with session_transaction(conn, "acme", "s1") as cur:
            assert 200 == len(cur.execute(QUERY).fetchall())


@pytest.mark.parametrize("rename", ["innocent", "another session"])
@pytest.mark.parametrize("binding", ["transaction", "connection"])
def test_renamed_application_name_does_not_escape_the_cut_off(
    pg_sandbox: Sandbox, store: RevocationStore, binding: str, rename: str
) -> None:
    """The tag is a setting the client can change; the mark require_session() leaves (an
    advisory lock held to the end of the transaction) is not."""
    with psycopg.connect(pg_sandbox.app_dsn) as conn, contextlib.suppress(psycopg.OperationalError):
        if binding == "connection":
            bind_connection(conn, "acme", "s1")
            conn.execute("SET application_name = 'innocent'")
            conn.commit()
        else:
            conn.execute(
                "SELECT set_config('sessionwarden.tenant', 'acme', true),"
                " set_config('sessionwarden.session_id', 's1', true),"
                " set_config('application_name', %s, true)",
                ("swt:" + tag("s1"),),
            )
        reader = conn.cursor("reader")
        reader.execute(QUERY)
        assert 10 == len(reader.fetchmany(10))
        if rename == "innocent":
            conn.execute("SELECT set_config('application_name', 'innocent', true)")
        else:  # pass for another, live session
            conn.execute(
                "SELECT set_config('sessionwarden.session_id', 's2', true),"
                " set_config('application_name', %s, true)",
                ("swt:" + tag("s2"),),
            )
        revoke(store, "s1")
        cut = store.cut_off([tag("s1")])
        leaked = rows_or_nothing(lambda: reader.fetchmany(10))
    assert ([], (0, 1)) == (leaked, cut)


def test_cancel_that_ends_only_a_savepoint_is_followed_by_termination(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """A cancel aborts the running statement; inside a savepoint the transaction and its
    cursor live on, so the second pass terminates what is still marked."""
    fetched_after_cancel: list[int] = []
    after_second_pass: list[Any] = []
    cancelled = threading.Event()
    second_pass = threading.Event()

    def reader_thread() -> None:
        with (
            psycopg.connect(pg_sandbox.app_dsn) as conn,
            contextlib.suppress(psycopg.OperationalError),
            session_transaction(conn, "acme", "s1"),
        ):
            reader = conn.cursor("reader")
            reader.execute(QUERY)
            reader.fetchmany(1)
            with contextlib.suppress(psycopg.errors.QueryCanceled), conn.transaction():
                conn.execute("SELECT pg_sleep(60)")
            fetched_after_cancel.append(len(reader.fetchmany(5)))
            cancelled.set()
            second_pass.wait(30)
            after_second_pass.extend(rows_or_nothing(lambda: reader.fetchmany(5)))

    worker = threading.Thread(target=reader_thread)
    worker.start()
    try:
        wait_until(lambda: running(pg_sandbox, "swt:" + tag("s1")), 30, "the sleep to start")
        revoke(store, "s1")
        first = store.cut_off([tag("s1")])
        assert cancelled.wait(30)
        second = store.cut_off([tag("s1")], terminate_all=True)
    finally:
        second_pass.set()
        worker.join(30)
    assert ((1, 0), [5], (0, 1), []) == (first, fetched_after_cancel, second, after_second_pass)


def test_repeatable_read_transaction_of_a_revoked_session_is_ended_by_the_cut_off(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """Its snapshot predates the revocation: the cut-off ends it (idle in the transaction:
    terminated). A statement it runs first is refused (40001; tests/postgres/
    test_old_snapshot.py), which aborts the transaction: its mark and cursors go with it."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with contextlib.suppress(psycopg.OperationalError), session_transaction(conn, "acme", "s1"):
            assert 200 == len(conn.execute(QUERY).fetchall())
            revoke(store, "s1")
            cut = store.cut_off([tag("s1")])
            after = rows_or_nothing(lambda: conn.execute(QUERY).fetchall())
    assert ((0, 1), []) == (cut, after)


def test_a_pooled_connection_that_moved_on_is_left_alone(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """Once the revoked session's transaction has ended, its connection carries no mark: the
    cut-off leaves it to the sessions it serves next."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        with session_transaction(conn, "acme", "s1") as cur:
            cur.execute(QUERY)
        revoke(store, "s1")
        assert (0, 0) == store.cut_off([tag("s1")], terminate_all=True)
        with session_transaction(conn, "acme", "s2") as cur:
            assert 200 == len(cur.execute(QUERY).fetchall())


@pytest.mark.parametrize(
    ("tenant", "session_id"),
    [("acme", "s1"), ("", ""), ("ténant", "sess-ü-😀"), ("a:b", "c\x1fd"), ("1:a", "b")],
)
def test_the_database_computes_the_same_session_tag(
    pg_sandbox: Sandbox, tenant: str, session_id: str
) -> None:
    """A service in any language can ask the database for the tag the sink looks for."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT sessionwarden.session_tag(%s, %s)", (tenant, session_id))
        assert (session_tag(tenant, session_id),) == row.fetchone()
