"""The schema's SQL, shipped as package data (``sessionwarden/sink/postgres/sql/NNN_name.sql``), and
the one function that applies it and records what it applied in
``sessionwarden.schema_migrations``."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from sessionwarden.errors import SessionwardenError

log = logging.getLogger(__name__)

BOOTSTRAP = "000_bootstrap.sql"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x5357_4D49  # pg_advisory_xact_lock key: one migration run at a time


class SchemaError(SessionwardenError):
    """The database does not hold the schema this version needs, or holds a different one."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _read(name: str) -> str:
    return (
        resources.files("sessionwarden.sink.postgres")
        .joinpath("sql", name)
        .read_text(encoding="utf-8")
    )


def migrations() -> list[Migration]:
    """The numbered migrations in order (the bootstrap file is not one of them)."""
    found = []
    for entry in resources.files("sessionwarden.sink.postgres").joinpath("sql").iterdir():
        match = _NAME.match(entry.name)
        if match and entry.name != BOOTSTRAP:
            found.append(Migration(int(match[1]), match[2], _read(entry.name)))
    return sorted(found, key=lambda m: m.version)


def full_sql() -> str:
    """Everything ``--init`` runs, for review (``sessionwarden sink postgres --print-sql``)."""
    parts = [f"-- {BOOTSTRAP}\n{_read(BOOTSTRAP)}"]
    parts += [f"-- {m.version:03d}_{m.name}.sql\n{m.sql}" for m in migrations()]
    return "\n".join(parts)


def apply_migrations(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply the migrations the database lacks, each in the one transaction that records it.
    Returns the ones applied; refuses a database whose applied SQL differs from ours."""
    applied: list[Migration] = []
    with conn.transaction():
        _require_utf8(conn)
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(_read(BOOTSTRAP))
        done = _applied(conn)
        for m in migrations():
            if m.version in done:
                continue
            conn.execute(m.sql)
            conn.execute(
                "INSERT INTO sessionwarden.schema_migrations (version, name, sha256)"
                " VALUES (%s, %s, %s)",
                (m.version, m.name, m.sha256),
            )
            log.info("applied migration", extra={"version": m.version, "migration": m.name})
            applied.append(m)
    return applied


def _require_utf8(conn: psycopg.Connection[Any]) -> None:
    """The session tag hashes UTF-8 and counts code points: in another server encoding (in
    SQL_ASCII length() counts bytes) sessionwarden.session_tag() would differ from the
    specification, and the cut-off would miss the backends that name themselves with it."""
    row = conn.execute("SELECT current_setting('server_encoding')").fetchone()
    raw = row[0] if row else b"?"
    encoding = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    if encoding != "UTF8":
        raise SchemaError(
            f"the database's encoding is {encoding}, not UTF8: the session tag is specified over"
            " UTF-8; create the database WITH ENCODING 'UTF8'"
        )


def check_schema(conn: psycopg.Connection[Any]) -> None:
    """Raise SchemaError unless every migration is applied, unchanged."""
    exists = conn.execute(
        "SELECT to_regclass('sessionwarden.schema_migrations') IS NOT NULL"
    ).fetchone()
    if not exists or not exists[0]:
        raise SchemaError(
            "the database has no sessionwarden schema: run `sessionwarden sink postgres --init`"
        )
    done = _applied(conn)
    missing = [f"{m.version:03d}_{m.name}" for m in migrations() if m.version not in done]
    if missing:
        raise SchemaError(
            f"the sessionwarden schema lacks migrations {', '.join(missing)}:"
            " run `sessionwarden sink postgres --init`"
        )


def _applied(conn: psycopg.Connection[Any]) -> dict[int, str]:
    rows = conn.execute("SELECT version, sha256 FROM sessionwarden.schema_migrations").fetchall()
    done = {int(v): str(h) for v, h in rows}
    for m in migrations():
        if m.version in done and done[m.version] != m.sha256:
            raise SchemaError(
                f"migration {m.version:03d}_{m.name} was applied with different SQL"
                " (edited after release?): refusing to guess"
            )
    return done
