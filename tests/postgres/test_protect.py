"""protect() leaves no way around the guard that PostgreSQL lets it close: the owner and its
views and SECURITY DEFINER functions are guarded (FORCE ROW LEVEL SECURITY), TRUNCATE needs a
live session, and what it cannot close (objects of roles that skip row-level security, copies)
is reported by sessionwarden.bypasses() and by protect() itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sessionwarden.contracts.codec import encode
from sessionwarden.sdk.pg_guard import session_transaction
from sessionwarden.sink.postgres.plan import RawRecord, plan_batch
from sessionwarden.sink.postgres.store import RevocationStore
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.unit.sdk.fakes import at, revocation

TOPIC = "t.sessionwarden.revocations"
Refused = psycopg.errors.InvalidAuthorizationSpecification


@pytest.fixture
def box(pg_sandbox: Sandbox) -> Sandbox:
    pg_sandbox.add_documents("acme", "one", "two", "three")
    return pg_sandbox


@pytest.fixture
def owner(box: Sandbox) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(box.owner_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def app(box: Sandbox) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(box.app_dsn, autocommit=True) as conn:
        yield conn


def app_role(box: Sandbox) -> sql.Identifier:
    return sql.Identifier(f"{box.name}_app")


def revoke(box: Sandbox, sid: str) -> None:
    with psycopg.connect(box.sink_dsn, autocommit=True) as conn:
        store = RevocationStore(conn, TOPIC)
        seen = store.offsets([0])
        record = RawRecord(0, seen[0], encode(revocation(sid, 0, tenant="acme")))
        store.write(plan_batch([record], at(1), timedelta(hours=1)), seen)


def reads(conn: psycopg.Connection[Any], query: str, sid: str | None) -> Any:
    """The first row of ``query``, bound to session ``sid`` (None: no session bound) with raw
    set_config and no check at bind: what refuses is the guard on the path itself (the policy,
    the trigger), not a helper's check before it."""
    if sid is None:
        return conn.execute(query).fetchone()
    with conn.transaction():
        bind_raw(conn, sid)
        return conn.execute(query).fetchone()


def bind_raw(conn: psycopg.Connection[Any], sid: str) -> None:
    conn.execute(
        "SELECT set_config('sessionwarden.tenant', 'acme', true),"
        " set_config('sessionwarden.session_id', %s, true)",
        (sid,),
    )


def test_the_owner_is_guarded_too(owner: psycopg.Connection[Any], box: Sandbox) -> None:
    """Without FORCE ROW LEVEL SECURITY the owner (and whatever runs as it) skips the guard."""
    with pytest.raises(Refused):
        reads(owner, "SELECT count(*) FROM app.documents", None)
    assert (3,) == reads(owner, "SELECT count(*) FROM app.documents", "s1")
    revoke(box, "s1")
    with pytest.raises(Refused):
        reads(owner, "SELECT count(*) FROM app.documents", "s1")


@pytest.mark.parametrize("through", ["view", "security definer function"])
def test_the_owners_views_and_definer_functions_are_guarded(
    box: Sandbox, owner: psycopg.Connection[Any], app: psycopg.Connection[Any], through: str
) -> None:
    """A view without security_invoker, or a SECURITY DEFINER function, reads as its owner:
    owned by the table's owner, it is guarded once row-level security is forced."""
    if through == "view":
        owner.execute("CREATE VIEW app.all_documents AS SELECT * FROM app.documents")
        owner.execute(sql.SQL("GRANT SELECT ON app.all_documents TO {}").format(app_role(box)))
        query = "SELECT count(*) FROM app.all_documents"
    else:
        owner.execute(
            "CREATE FUNCTION app.count_documents() RETURNS bigint LANGUAGE sql"
            " SECURITY DEFINER SET search_path = pg_catalog AS"
            " 'SELECT count(*) FROM app.documents'"
        )
        query = "SELECT app.count_documents()"
    with pytest.raises(Refused):
        reads(app, query, None)
    assert (3,) == reads(app, query, "s1")
    revoke(box, "s1")
    with pytest.raises(Refused):
        reads(app, query, "s1")


def test_truncate_needs_a_live_session_whatever_was_granted(
    box: Sandbox, owner: psycopg.Connection[Any], app: psycopg.Connection[Any]
) -> None:
    """Row-level security never sees TRUNCATE: the guard's trigger refuses it unbound or
    revoked, even with GRANT ALL and for the owner."""
    owner.execute(sql.SQL("GRANT ALL ON app.documents TO {}").format(app_role(box)))
    revoke(box, "s1")
    for conn in (app, owner):
        with pytest.raises(Refused):
            conn.execute("TRUNCATE app.documents")
        with pytest.raises(Refused), conn.transaction():
            bind_raw(conn, "s1")
            conn.execute("TRUNCATE app.documents")
    assert (3,) == reads(owner, "SELECT count(*) FROM app.documents", "s2")
    with session_transaction(owner, "acme", "s2") as cur:  # a live session may
        cur.execute("TRUNCATE app.documents")
    assert (0,) == reads(owner, "SELECT count(*) FROM app.documents", "s2")


def test_truncate_is_guarded_in_replica_mode(box: Sandbox, owner: psycopg.Connection[Any]) -> None:
    """session_replication_role = replica skips ordinary triggers: the guard's fires always,
    and a role that may set replica mode is reported."""
    owner_role = f"{box.name}_owner"
    with psycopg.connect(make_conninfo(box.admin_dsn, dbname=box.name), autocommit=True) as admin:
        admin.execute(
            sql.SQL("GRANT SET ON PARAMETER session_replication_role TO {}").format(
                sql.Identifier(owner_role)
            )
        )
        try:
            owner.execute("SET session_replication_role = replica")
            with pytest.raises(Refused):
                owner.execute("TRUNCATE app.documents")
            found = owner.execute(
                "SELECT kind, object FROM sessionwarden.bypasses('app.documents')"
            ).fetchall()
        finally:
            admin.execute(
                sql.SQL("REVOKE SET ON PARAMETER session_replication_role FROM {}").format(
                    sql.Identifier(owner_role)
                )
            )
    assert [("replication_role", owner_role)] == found
    assert (3,) == reads(owner, "SELECT count(*) FROM app.documents", "s1")


def test_protect_revokes_truncate_grants_and_warns(
    box: Sandbox, owner: psycopg.Connection[Any]
) -> None:
    """TRUNCATE passes any permissive policy of the table (tenant isolation): protect() takes
    back the TRUNCATE the owner granted, and says so."""
    owner.execute(sql.SQL("GRANT ALL ON app.documents TO {}").format(app_role(box)))
    warnings: list[str] = []
    owner.add_notice_handler(lambda d: warnings.append(str(d.message_primary)))
    owner.execute("SELECT sessionwarden.protect('app.documents')")
    row = owner.execute(
        "SELECT has_table_privilege(%s, 'app.documents', 'TRUNCATE'),"
        " has_table_privilege(%s, 'app.documents', 'SELECT')",
        (f"{box.name}_app", f"{box.name}_app"),
    ).fetchone()
    assert (False, True) == row
    assert [f"sessionwarden: revoked TRUNCATE on app.documents from {box.name}_app"] == warnings
    assert [] == owner.execute("SELECT * FROM sessionwarden.bypasses('app.documents')").fetchall()


def test_bypasses_lists_what_row_level_security_cannot_close(
    box: Sandbox, app: psycopg.Connection[Any]
) -> None:
    """Objects of superusers and BYPASSRLS roles read past any policy: they are reported, and
    the report is empty again once they are gone or invoker-safe."""
    role = sql.Identifier(f"{box.name}_app")
    bypasser = f"{box.name}_bypass"
    with psycopg.connect(make_conninfo(box.admin_dsn, dbname=box.name), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} BYPASSRLS").format(sql.Identifier(bypasser)))
        admin.execute(
            sql.SQL("GRANT SELECT ON app.documents TO {}").format(sql.Identifier(bypasser))
        )
        admin.execute("CREATE VIEW app.admin_view AS SELECT * FROM app.documents")
        admin.execute(
            "CREATE VIEW app.invoker_view WITH (security_invoker = true)"
            " AS SELECT * FROM app.documents"
        )
        admin.execute(
            "CREATE FUNCTION app.admin_count() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER"
            " AS $$ BEGIN RETURN (SELECT count(*) FROM app.documents); END $$"
        )
        admin.execute(
            "CREATE MATERIALIZED VIEW app.copy AS SELECT * FROM app.documents WITH NO DATA"
        )
        admin.execute(
            sql.SQL("GRANT SELECT ON app.admin_view, app.invoker_view TO {}").format(role)
        )
        found = admin.execute(
            "SELECT kind, object FROM sessionwarden.bypasses('app.documents') ORDER BY kind, object"
        ).fetchall()
        # The limit itself: a superuser's view is read past the guard by an unbound session.
        assert (3,) == reads(app, "SELECT count(*) FROM app.admin_view", None)
        with pytest.raises(Refused):
            reads(app, "SELECT count(*) FROM app.invoker_view", None)
        admin.execute("DROP VIEW app.admin_view")
        admin.execute("DROP FUNCTION app.admin_count()")
        admin.execute("DROP MATERIALIZED VIEW app.copy")
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(bypasser)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(bypasser)))
        after = admin.execute("SELECT * FROM sessionwarden.bypasses()").fetchall()
    assert [
        ("bypassrls_role", bypasser),
        ("materialized_view", "app.copy"),
        ("security_definer", "app.admin_count()"),
        ("view", "app.admin_view"),
    ] == found
    assert [] == after


@pytest.mark.parametrize(
    "statement",
    [
        "COPY app.documents TO STDOUT",
        "COPY (SELECT * FROM app.documents) TO STDOUT",
        "SELECT * FROM app.documents FOR UPDATE",
        "DELETE FROM app.documents",
        "UPDATE app.documents SET body = 'x'",
        "INSERT INTO app.documents (tenant, body) VALUES ('acme', 'x')",
        "MERGE INTO app.documents d USING (VALUES (1)) v(id) ON d.id = v.id"
        " WHEN MATCHED THEN UPDATE SET body = 'x'",
        "COPY app.documents (tenant, body) FROM STDIN",
    ],
)
def test_other_statements_of_an_unbound_session_are_refused(
    app: psycopg.Connection[Any], statement: str
) -> None:
    """COPY, locking reads and writes go through the same policy as SELECT."""
    if statement.endswith("FROM STDIN"):  # PostgreSQL refuses COPY FROM under RLS itself
        with (
            pytest.raises(psycopg.errors.FeatureNotSupported, match="row-level security"),
            app.cursor() as cur,
            cur.copy(statement) as copy,
        ):
            copy.write_row(("acme", "x"))
        return
    with pytest.raises(Refused):
        if statement.startswith("COPY"):
            with app.cursor() as cur, cur.copy(statement) as copy:
                list(copy)
        else:
            app.execute(statement)


def test_a_dump_with_row_security_off_is_refused(app: psycopg.Connection[Any]) -> None:
    """pg_dump reads with row_security = off: PostgreSQL refuses a role the policy applies to
    rather than dumping past it."""
    app.execute("SET row_security = off")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        app.execute("SELECT * FROM app.documents")


def test_the_sink_reads_the_report_of_every_protected_table(
    box: Sandbox, owner: psycopg.Connection[Any]
) -> None:
    """The sink logs what bypasses() finds at its start: a guard turned half off is seen."""
    owner.execute("ALTER TABLE app.documents NO FORCE ROW LEVEL SECURITY")
    owner.execute("ALTER TABLE app.documents DISABLE TRIGGER sessionwarden_guard_truncate")
    with psycopg.connect(box.sink_dsn, autocommit=True) as conn:
        found = RevocationStore(conn, TOPIC).bypasses()
    assert [("app.documents", "not_forced"), ("app.documents", "truncate_unguarded")] == [
        (table, kind) for table, kind, _, _ in found
    ]


def test_partitions_and_children_are_protected_with_their_parent(
    box: Sandbox, owner: psycopg.Connection[Any], app: psycopg.Connection[Any]
) -> None:
    """Read directly, a partition or inheritance child skips its parent's policies: protect()
    guards every descendant, and one added later is reported until protect() runs again."""
    owner.execute("CREATE TABLE app.parted (id int, tenant text) PARTITION BY LIST (tenant)")
    owner.execute("CREATE TABLE app.parted_acme PARTITION OF app.parted FOR VALUES IN ('acme')")
    owner.execute("INSERT INTO app.parted VALUES (1, 'acme')")
    owner.execute("SELECT sessionwarden.protect('app.parted')")
    owner.execute("CREATE TABLE app.archive () INHERITS (app.documents)")
    owner.execute("INSERT INTO app.archive (tenant, body) VALUES ('acme', 'old')")
    owner.execute(
        sql.SQL("GRANT SELECT ON app.parted, app.parted_acme, app.archive TO {}").format(
            app_role(box)
        )
    )
    with pytest.raises(Refused):
        reads(app, "SELECT count(*) FROM app.parted_acme", None)
    assert (1,) == reads(app, "SELECT count(*) FROM app.archive", None)  # the hole, reported:
    found = owner.execute("SELECT kind, object FROM sessionwarden.bypasses()").fetchall()
    assert [("unprotected_child", "app.archive")] == found
    owner.execute("SELECT sessionwarden.protect('app.documents')")
    with pytest.raises(Refused):
        reads(app, "SELECT count(*) FROM app.archive", None)
    assert [] == owner.execute("SELECT * FROM sessionwarden.bypasses()").fetchall()


def test_a_table_protected_before_the_upgrade_is_reported_with_the_step_to_take(
    box: Sandbox, owner: psycopg.Connection[Any]
) -> None:
    """A trigger of an earlier protect() fires only in the origin role (migration 004 cannot
    change tables it does not own): the sink's report names protect(), and protect() clears it."""
    owner.execute("ALTER TABLE app.documents ENABLE TRIGGER sessionwarden_guard_truncate")
    with psycopg.connect(box.sink_dsn, autocommit=True) as conn:
        found = RevocationStore(conn, TOPIC).bypasses()
    owner.execute("SELECT sessionwarden.protect('app.documents')")
    after = owner.execute("SELECT * FROM sessionwarden.bypasses('app.documents')").fetchall()
    assert [("app.documents", "truncate_unguarded")] == [(t, k) for t, k, _, _ in found]
    assert "run sessionwarden.protect() again as the table's owner" in found[0][3]
    assert [] == after
