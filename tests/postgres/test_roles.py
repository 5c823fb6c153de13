"""The role split of docs/DATABASE.md: a NOLOGIN role owns the sessionwarden schema and runs the
migrations; the sink's runtime login, granted only what it uses, runs the sink's every
operation but cannot replace the guard's functions."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sessionwarden.contracts.codec import encode
from sessionwarden.sdk.pg_guard import is_refused, session_tag, session_transaction
from sessionwarden.sink.postgres.migrations import check_schema
from sessionwarden.sink.postgres.plan import RawRecord, plan_batch
from sessionwarden.sink.postgres.store import RevocationStore
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.postgres.test_sink_command import sink_command
from tests.unit.sdk.fakes import at, revocation

TOPIC = "t.sessionwarden.revocations"

# As in docs/DATABASE.md, "Setting it up" (the sink's role being {sink}).
GRANTS = """
GRANT SELECT, INSERT, UPDATE, DELETE
   ON sessionwarden.revoked_sessions, sessionwarden.revoked_tenants, sessionwarden.sink_offsets
   TO {sink};
GRANT SELECT ON sessionwarden.schema_migrations TO {sink};
GRANT SELECT, UPDATE ON SEQUENCE sessionwarden.last_revocation_write TO {sink};
GRANT EXECUTE ON FUNCTION sessionwarden.cut_off(text[], boolean) TO {sink};
"""


def test_a_sink_that_does_not_own_the_schema_runs_but_cannot_change_the_guard(
    pg_bare_sandbox: Sandbox,
) -> None:
    box = pg_bare_sandbox
    owner = f"{box.name}_schema"
    sink = sql.Identifier(f"{box.name}_sink")
    as_owner = make_conninfo(box.admin_dsn, dbname=box.name, options=f"-crole={owner}")
    with psycopg.connect(box.admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
        admin.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(box.name), sql.Identifier(owner)
            )
        )
    try:
        done = sink_command("--init", dsn=as_owner)
        assert 0 == done.returncode, done.stderr
        with psycopg.connect(as_owner, autocommit=True) as db:
            for grant in GRANTS.strip().split(";")[:-1]:
                db.execute(sql.SQL(grant.strip()).format(sink=sink))  # type: ignore[arg-type]
        box.create_app_schema()
        box.add_documents("acme", "one", "two")
        app = psycopg.connect(box.app_dsn, autocommit=True)  # the cut-off ends it
        with psycopg.connect(box.sink_dsn, autocommit=True) as conn:
            store = RevocationStore(conn, TOPIC)
            check_schema(conn)
            assert [] == store.missing_powers()
            assert [] == store.bypasses()
            app.execute("BEGIN")
            app.execute("SELECT sessionwarden.bind('acme', 's1')")
            seen = store.offsets([0])
            record = RawRecord(0, seen[0], encode(revocation("s1", 0, tenant="acme")))
            store.write(plan_batch([record], at(1), timedelta(hours=1)), seen)
            cut = store.cut_off([session_tag("acme", "s1")])
            assert [session_tag("acme", "s1")] == store.revoked_tags()
            assert 1 == store.prune(at(1) + timedelta(days=1))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    "CREATE OR REPLACE FUNCTION sessionwarden.require_session() RETURNS boolean"
                    " LANGUAGE sql AS 'SELECT true'"
                )
        with contextlib.suppress(psycopg.Error):
            app.execute("SELECT 1")
        assert app.closed or app.broken
        app.close()
        with psycopg.connect(box.app_dsn, autocommit=True) as app:
            with pytest.raises(psycopg.Error) as unbound:
                app.execute("SELECT count(*) FROM app.documents")
            with session_transaction(app, "acme", "s2") as cur:
                live = cur.execute("SELECT count(*) FROM app.documents").fetchone()
        assert ((0, 1), (2,)) == (cut, live)
        assert is_refused(unbound.value)
    finally:
        with psycopg.connect(box.admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(box.name))
            )
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(owner)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(owner)))


def test_the_sink_names_the_roles_the_cut_off_needs_that_it_lacks(pg_sandbox: Sandbox) -> None:
    """What the sink warns of at its start (docs/DATABASE.md, "Setting it up")."""
    sink = sql.Identifier(f"{pg_sandbox.name}_sink")
    with psycopg.connect(pg_sandbox.sink_dsn, autocommit=True) as conn:
        store = RevocationStore(conn, TOPIC)
        before = store.missing_powers()
        with psycopg.connect(pg_sandbox.admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("REVOKE pg_read_all_stats, pg_signal_backend FROM {}").format(sink)
            )
        after = store.missing_powers()
    assert ([], ["pg_signal_backend", "pg_read_all_stats"]) == (before, after)
