"""A sandbox database on a server you administer: the three roles of a real deployment and a
protected sample table, for tests, benchmarks and the demo.

    sandbox = Sandbox.create(admin_dsn, "sw_demo")   # roles sw_demo_{sink,owner,app}
    sandbox.sink_dsn    # owns the sessionwarden schema (migrations applied), pg_signal_backend,
                        # pg_read_all_stats
    sandbox.app_dsn     # the service: neither superuser nor owner; reads/writes app.documents
    sandbox.drop()

``app.documents (id, tenant, body)`` belongs to the owner role and is under the guard
(``sessionwarden.protect``). Roles get random passwords, so the DSNs work on servers that
require them. Names and the password go through psycopg.sql, never string formatting.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sessionwarden.sdk.pg_guard import is_refused, session_transaction
from sessionwarden.sink.postgres.migrations import apply_migrations
from sessionwarden.testing.pg_cluster import ClusterError, TempCluster

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

_APP_SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.documents (
    id     bigserial PRIMARY KEY,
    tenant text NOT NULL,
    body   text NOT NULL
);
SELECT sessionwarden.protect('app.documents');
"""


@dataclass(frozen=True)
class Sandbox:
    admin_dsn: str
    name: str
    password: str

    @property
    def dbname(self) -> str:
        return self.name

    def dsn(self, role: str) -> str:
        """DSN of ``role`` ("sink", "owner" or "app") on the sandbox database."""
        return make_conninfo(
            self.admin_dsn, dbname=self.name, user=f"{self.name}_{role}", password=self.password
        )

    @property
    def sink_dsn(self) -> str:
        return self.dsn("sink")

    @property
    def owner_dsn(self) -> str:
        return self.dsn("owner")

    @property
    def app_dsn(self) -> str:
        return self.dsn("app")

    @classmethod
    def create(cls, admin_dsn: str, name: str, migrate: bool = True) -> Sandbox:
        """Roles, database and (when ``migrate``) the schema and the protected sample table."""
        if not _NAME.match(name):
            raise ValueError(f"sandbox name must match {_NAME.pattern}, got {name!r}")
        box = cls(admin_dsn, name, secrets.token_hex(16))
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            for role in ("sink", "owner", "app"):
                admin.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(f"{name}_{role}"), sql.Literal(box.password)
                    )
                )
            admin.execute(
                sql.SQL("GRANT pg_signal_backend, pg_read_all_stats TO {}").format(
                    sql.Identifier(f"{name}_sink")
                )
            )
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(f"{name}_sink")
                )
            )
        with psycopg.connect(box.dsn("sink"), autocommit=True) as db:
            db.execute(
                sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                    sql.Identifier(name), sql.Identifier(f"{name}_owner")
                )
            )
            if migrate:
                apply_migrations(db)
        if migrate:
            box.create_app_schema()
        return box

    def create_app_schema(self) -> None:
        """The owner's protected sample table, readable and writable by the app role."""
        app = sql.Identifier(f"{self.name}_app")
        with psycopg.connect(self.owner_dsn, autocommit=True) as db:
            db.execute(_APP_SCHEMA)
            db.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {}").format(app))
            db.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON app.documents TO {}").format(app)
            )
            db.execute(sql.SQL("GRANT USAGE ON SEQUENCE app.documents_id_seq TO {}").format(app))

    def add_documents(self, tenant: str, *bodies: str) -> None:
        """Rows of app.documents, written by the owner in a transaction bound to a session of
        its own (the table forces row-level security: the owner is guarded too)."""
        with (
            psycopg.connect(self.owner_dsn, autocommit=True) as db,
            session_transaction(db, tenant, "sandbox-owner") as cur,
        ):
            cur.executemany(
                "INSERT INTO app.documents (tenant, body) VALUES (%s, %s)",
                [(tenant, body) for body in bodies],
            )

    def drop(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )
            for role in ("app", "owner", "sink"):
                admin.execute(
                    sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(f"{self.name}_{role}"))
                )


@contextmanager
def demo_database(say: Callable[[str], None]) -> Iterator[Sandbox | None]:
    """A throwaway cluster with a sandbox for `make demo`, or None (and why) without PostgreSQL."""
    try:
        cluster = TempCluster().start()
    except ClusterError as exc:
        say(f"PostgreSQL left out of the demo: {exc}")
        yield None
        return
    try:
        box = Sandbox.create(cluster.dsn(), "sw_demo")
        say(f"started PostgreSQL: psql '{cluster.dsn(box.dbname, box.name + '_app')}'")
        yield box
    finally:
        cluster.stop()


def revoked_count(box: Sandbox) -> int:
    """Rows of the sandbox's revocation table."""
    with psycopg.connect(box.sink_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM sessionwarden.revoked_sessions").fetchone()
    return int(row[0]) if row else 0


def refused(
    app: psycopg.Connection[Any],
    tenant: str,
    sid: str,
    query: LiteralString = "SELECT count(*) FROM app.documents",
) -> bool:
    """Whether the guard refuses ``query`` in a transaction bound to the session (any other
    database error is raised)."""
    try:
        with session_transaction(app, tenant, sid) as cur:
            cur.execute(query)
    except psycopg.Error as exc:
        if is_refused(exc):
            return True
        raise
    return False
