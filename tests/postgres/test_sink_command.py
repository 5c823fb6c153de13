"""`sessionwarden sink postgres` on a real server: --init, --print-sql, and one clear message
(exit 2) for a wrong DSN or a database without the schema."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sessionwarden.sink.postgres.migrations import (
    SchemaError,
    apply_migrations,
    check_schema,
    migrations,
)
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.integration.harness import REPO


def sink_command(*args: str, dsn: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARDEN_")}
    env.update(SESSIONWARDEN_PG_DSN=dsn, SESSIONWARDEN_LOG_FORMAT="text")
    return subprocess.run(
        [sys.executable, "-m", "sessionwarden", "sink", "postgres", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_applies_the_migrations_once_and_records_them(pg_bare_sandbox: Sandbox) -> None:
    """--init applies what is missing and says so; a second run changes nothing."""
    first = sink_command("--init", dsn=pg_bare_sandbox.sink_dsn)
    assert 0 == first.returncode, first.stderr
    names = [f"{m.version:03d}_{m.name}" for m in migrations()]
    assert f"applied {', '.join(names)}\n" == first.stdout
    again = sink_command("--init", dsn=pg_bare_sandbox.sink_dsn)
    assert (0, "applied nothing (up to date)\n") == (again.returncode, again.stdout)
    with psycopg.connect(pg_bare_sandbox.sink_dsn) as conn:
        rows = conn.execute(
            "SELECT version, sha256 FROM sessionwarden.schema_migrations ORDER BY version"
        ).fetchall()
        check_schema(conn)
    assert [(m.version, m.sha256) for m in migrations()] == rows


def test_print_sql_shows_the_guard_without_a_database() -> None:
    """The SQL can be reviewed before anything touches a database."""
    done = sink_command("--print-sql")
    assert 0 == done.returncode, done.stderr
    for needle in ("CREATE FUNCTION sessionwarden.require_session()", "AS RESTRICTIVE", "28000"):
        assert needle in done.stdout


def test_missing_schema_is_one_clear_message(pg_bare_sandbox: Sandbox) -> None:
    """Running the sink against an uninitialised database says what to run, and exits 2."""
    done = sink_command(dsn=pg_bare_sandbox.sink_dsn)
    assert 2 == done.returncode
    assert [
        "sessionwarden: the database has no sessionwarden schema:"
        " run `sessionwarden sink postgres --init`"
    ] == done.stderr.strip().splitlines()[-1:]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("problem", ["no such database", "nothing listening"])
def test_wrong_dsn_is_one_clear_message_without_the_password(
    pg_bare_sandbox: Sandbox, problem: str
) -> None:
    """A wrong DSN names the server and the cause in one line, never the password."""
    if problem == "no such database":
        dsn = make_conninfo(pg_bare_sandbox.sink_dsn, dbname="no_such_db")
    else:
        dsn = make_conninfo(pg_bare_sandbox.sink_dsn, host="127.0.0.1", port="1")
    done = sink_command(dsn=dsn)
    assert 2 == done.returncode
    lines = done.stderr.strip().splitlines()
    assert 1 == len(lines), done.stderr
    assert lines[0].startswith(
        f"sessionwarden: cannot connect to PostgreSQL as {pg_bare_sandbox.name}_sink@127.0.0.1:"
    )
    assert ("no_such_db" if problem == "no such database" else "refused") in lines[0]
    assert pg_bare_sandbox.password not in done.stderr


def test_edited_migration_is_refused(pg_sandbox: Sandbox) -> None:
    """SQL changed after it was applied is reported, never silently re-run or ignored."""
    with psycopg.connect(pg_sandbox.sink_dsn, autocommit=True) as conn:
        conn.execute("UPDATE sessionwarden.schema_migrations SET sha256 = 'x' WHERE version = 1")
        with pytest.raises(SchemaError, match="applied with different SQL"):
            check_schema(conn)
        with pytest.raises(SchemaError, match="applied with different SQL"):
            apply_migrations(conn)


def _shapes(box: Sandbox) -> list[tuple[str, str]]:
    """(DSN, the password its author meant) of the sandbox's server, in the shapes that libpq
    misreads or refuses: reserved characters unencoded, a password in the query, key=value
    values unquoted or unterminated."""
    conn = psycopg.conninfo.conninfo_to_dict(box.sink_dsn)
    host, port, user, db = "127.0.0.1", conn["port"], f"{box.name}_sink", box.name
    return [
        (f"postgresql://{user}:Zq8%Tx4w@{host}:{port}/{db}", "Zq8%Tx4w"),
        (f"postgresql://{user}:Kf3@Lm9vQ@{host}:{port}/{db}", "Kf3@Lm9vQ"),
        (f"postgresql://{user}:Kf3:Lm9vQ@{host}:{port}/{db}", "Kf3:Lm9vQ"),  # well-formed
        (f"postgresql://{user}@{host}:{port}/{db}?password=Wr7%Yp2x", "Wr7%Yp2x"),
        (f"postgresql://{user}@{host}:{port}/{db}?password=Wr7Yp2x&bogus=1", "Wr7Yp2x"),
        (f"host={host} port={port} user={user} password=Hn5%Rt8q bogus=1", "Hn5%Rt8q"),
        (f"host={host} port={port} user={user} password=Hn5 Rt8q", "Hn5 Rt8q"),
        (f"host={host} port={port} user={user} password='Hn5 Rt8q", "Hn5 Rt8q"),
    ]


@pytest.mark.parametrize("shape", range(8))
@pytest.mark.parametrize("command", [(), ("--init",)])
def test_malformed_dsn_never_prints_the_password(
    pg_bare_sandbox: Sandbox, shape: int, command: tuple[str, ...]
) -> None:
    """Whatever the DSN's shape, the sink's error names the cause, never a piece of the
    password (an unencoded % once printed it whole)."""
    dsn, password = _shapes(pg_bare_sandbox)[shape]
    done = sink_command(*command, dsn=dsn)
    assert (0 if shape == 2 and command else 2) == done.returncode, done.stderr
    assert "Traceback" not in done.stderr
    for piece in [password, *(p for p in password.replace("%", " ").split() if len(p) >= 3)]:
        for cut in [piece, *piece.split("@"), *piece.split(":")]:
            if len(cut) >= 3:
                assert cut not in done.stderr, done.stderr


def test_init_refuses_a_database_not_in_utf8(pg_bare_sandbox: Sandbox) -> None:
    """In SQL_ASCII, length() counts bytes: the database's session_tag() would differ from the
    specification (and from every client) for a tenant outside ASCII."""
    box = pg_bare_sandbox
    name = f"{box.name}_ascii"
    with psycopg.connect(box.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL(
                "CREATE DATABASE {} OWNER {} ENCODING 'SQL_ASCII' TEMPLATE template0"
                " LC_COLLATE 'C' LC_CTYPE 'C'"
            ).format(sql.Identifier(name), sql.Identifier(f"{box.name}_sink"))
        )
    try:
        done = sink_command("--init", dsn=make_conninfo(box.sink_dsn, dbname=name))
        with psycopg.connect(make_conninfo(box.admin_dsn, dbname=name)) as conn:
            schema = conn.execute("SELECT to_regnamespace('sessionwarden')").fetchone()
    finally:
        with psycopg.connect(box.admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    assert (2, (None,)) == (done.returncode, schema)
    assert "encoding is SQL_ASCII, not UTF8" in done.stderr
