"""A statement whose snapshot predates a revocation cannot read for the revoked session, however
the session was bound: with raw set_config (no tag, no check at bind), in READ COMMITTED
through a cursor declared before the revocation, and in REPEATABLE READ; and binding through
sessionwarden.bind() marks the transaction at once. One backend the sink may not signal (a
superuser's) neither stops the cut-off of the others nor fails it."""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from sessionwarden.contracts.postgres import session_tag
from sessionwarden.sdk.pg_guard import is_refused
from sessionwarden.sink.postgres.store import RevocationStore
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.postgres.revoking import QUERY, revoke

RAW_BIND = (
    "SELECT set_config('sessionwarden.tenant', 'acme', true),"
    " set_config('sessionwarden.session_id', %s, true)"
)


def both_passes(store: RevocationStore, sid: str) -> tuple[tuple[int, int], tuple[int, int]]:
    tag = session_tag("acme", sid)
    return store.cut_off([tag]), store.cut_off([tag], terminate_all=True)


def outcome(run: Any) -> Any:
    """What the statement returned, or the SQLSTATE it failed with, or 'ended' (no backend)."""
    try:
        return run()
    except psycopg.Error as exc:  # 57P01: terminated by the administrator (the cut-off)
        return "ended" if exc.sqlstate in (None, "57P01") else exc.sqlstate


def test_repeatable_read_snapshot_taken_before_the_revocation_reads_nothing(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """Bound with raw set_config, no guarded statement before the revocation: its snapshot does
    not show the revocation row, and the cut-off found no mark. The guard refuses it anyway
    (40001: the revocation set changed after the snapshot; retry)."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute(RAW_BIND, ("s1",))
        conn.execute("SELECT 1").fetchall()  # the snapshot is taken here
        revoke(store, "s1")
        passes = both_passes(store, "s1")
        got = outcome(lambda: len(conn.execute(QUERY).fetchall()))
    assert (((0, 0), (0, 0)), "40001") == (passes, got)


def test_repeatable_read_of_a_live_session_reads_after_other_sessions_revocations(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """What the refusal costs: a snapshot older than any revocation write is refused, for any
    session; a new transaction (a retry) reads again."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute(RAW_BIND, ("s2",))
        assert 200 == len(conn.execute(QUERY).fetchall())
        revoke(store, "s1")
        stale = outcome(lambda: len(conn.execute(QUERY).fetchall()))
        conn.execute("ROLLBACK")
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute(RAW_BIND, ("s2",))
        retried = len(conn.execute(QUERY).fetchall())
        conn.execute("ROLLBACK")
    assert ("40001", 200) == (stale, retried)


def test_read_committed_cursor_declared_before_the_revocation_reads_nothing(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """The cursor's snapshot predates the revocation and its first FETCH comes after both
    passes of the cut-off (which found no mark): the guard checks with a fresh view."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute(RAW_BIND, ("s1",))
        conn.execute(f"DECLARE c CURSOR FOR {QUERY}")
        revoke(store, "s1")
        passes = both_passes(store, "s1")
        got = outcome(lambda: len(conn.execute("FETCH ALL FROM c").fetchall()))
    assert (((0, 0), (0, 0)), "28000") == (passes, got)


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_bind_marks_the_transaction_and_names_the_backend(
    pg_sandbox: Sandbox, store: RevocationStore, isolation: str
) -> None:
    """sessionwarden.bind() sets the binding and the tag and asks the guard in one statement:
    the cut-off's first pass finds the backend before it read anything."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        conn.execute(f"BEGIN ISOLATION LEVEL {isolation}")
        row = conn.execute("SELECT sessionwarden.bind('acme', 's1')").fetchone()
        name = conn.execute("SHOW application_name").fetchone()
        revoke(store, "s1")
        first = store.cut_off([session_tag("acme", "s1")])
        got = outcome(lambda: len(conn.execute(QUERY).fetchall()))
    tag = session_tag("acme", "s1")
    assert ((tag,), ("swt:" + tag,), (0, 1), "ended") == (row, name, first, got)


def test_bind_refuses_a_revoked_session_and_binds_a_dedicated_connection(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    revoke(store, "s1")
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT sessionwarden.bind('acme', 's1')")
        conn.execute("SELECT sessionwarden.bind('acme', 's2', false)")
        name = conn.execute("SHOW application_name").fetchone()
        count = len(conn.execute(QUERY).fetchall())
    assert is_refused(refused.value)
    assert (("swc:" + session_tag("acme", "s2"),), 200) == (name, count)


def test_a_backend_the_sink_may_not_signal_does_not_stop_the_cut_off(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """A superuser's backend named for the revoked session: pg_terminate_backend refuses it.
    The other marked backend is still ended, and the refusal is counted, not raised."""
    superuser = make_conninfo(pg_sandbox.admin_dsn, dbname=pg_sandbox.name)
    tag = session_tag("acme", "s1")
    with (
        psycopg.connect(superuser, autocommit=True) as su,
        psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as victim,
    ):
        victim.execute("BEGIN")
        victim.execute("SELECT sessionwarden.bind('acme', 's1')")
        su.execute("SELECT set_config('application_name', %s, false)", ("swc:" + tag,))
        revoke(store, "s1")
        with contextlib.suppress(psycopg.OperationalError):
            cut = store.cut_off([tag])
        got = outcome(lambda: victim.execute("SELECT count(*) FROM app.documents").fetchall())
        refused = store.refused_signals
        alive = su.execute("SELECT 1").fetchone()
    assert ((0, 1), "ended", 1, (1,)) == (cut, got, refused, alive)


def test_a_revocation_write_from_another_clusters_future_is_repaired(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """A dump restored into a younger cluster carries the sequence's transaction id, which
    would turn the check of old snapshots off: the sink resets it at its start, and a
    REPEATABLE READ snapshot older than the next revocation is refused again."""
    store.conn.execute("SELECT setval('sessionwarden.last_revocation_write', 1099511627776)")
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        repaired = (store.repair_last_write(), store.repair_last_write())
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute(RAW_BIND, ("s1",))
        conn.execute("SELECT 1").fetchall()
        revoke(store, "s1")
        got = outcome(lambda: len(conn.execute(QUERY).fetchall()))
    assert ((True, False), "40001") == (repaired, got)


def test_a_revocation_written_by_hand_also_refuses_older_snapshots(
    pg_sandbox: Sandbox, store: RevocationStore
) -> None:
    """The write's transaction id is recorded by a trigger of the revocation table, not by the
    sink: an operator's INSERT counts too."""
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute(RAW_BIND, ("s1",))
        conn.execute("SELECT 1").fetchall()
        store.conn.execute(
            "INSERT INTO sessionwarden.revoked_sessions (tenant, session_id, user_id, reason,"
            " revocation_id, effective_at, keep_until, source_topic, source_partition,"
            " source_offset) VALUES ('acme', 's1', 'u1', 'by hand', gen_random_uuid(), now(),"
            " now() + interval '1 hour', 'manual', -1, -1)"
        )
        got = outcome(lambda: len(conn.execute(QUERY).fetchall()))
    assert "40001" == got
