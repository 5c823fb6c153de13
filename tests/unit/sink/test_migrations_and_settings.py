"""The shipped SQL and the sink's settings, without a server."""

from __future__ import annotations

import pytest

from sessionwarden.config.settings import load_settings
from sessionwarden.errors import ConfigError
from sessionwarden.sink.postgres.consumer import describe_dsn
from sessionwarden.sink.postgres.migrations import BOOTSTRAP, full_sql, migrations


def test_migrations_are_numbered_in_order_and_exclude_the_bootstrap() -> None:
    """--init applies them in version order; the bootstrap runs before every migration."""
    found = migrations()
    assert [1, 2, 3, 4, 5] == [m.version for m in found]
    assert [
        "revocations",
        "guard",
        "cut_off_and_bypasses",
        "old_snapshots_and_signals",
        "tenant_revocations",
    ] == [m.name for m in found]
    assert all(len(m.sha256) == 64 for m in found)
    sql = full_sql()
    assert sql.index(BOOTSTRAP) < sql.index("001_revocations.sql") < sql.index("002_guard.sql")
    assert sql.index("002_guard.sql") < sql.index("003_cut_off_and_bypasses.sql")


def test_guard_sql_is_restrictive_and_raises_28000() -> None:
    """The policy narrows access (RESTRICTIVE) and the refusal has its own SQLSTATE."""
    guard = migrations()[1].sql
    assert "AS RESTRICTIVE" in guard and "ERRCODE = '28000'" in guard
    assert "(SELECT sessionwarden.require_session())" in guard  # an init plan: once a statement
    assert "SECURITY DEFINER" in guard and "SET search_path" in guard


def test_describe_dsn_never_shows_the_password() -> None:
    """Log lines and error messages name the server, never the secret."""
    assert "app@db:6432/prod" == describe_dsn("host=db port=6432 dbname=prod user=app password=s3")
    assert "s3cret" not in describe_dsn("postgresql://app:s3cret@db/prod")
    assert "an unparsable DSN" == describe_dsn("host='unterminated")


def test_pg_dsn_is_hidden_from_the_settings_repr() -> None:
    settings = load_settings(pg_dsn="host=db password=s3cret")
    assert "s3cret" not in repr(settings)


def test_pg_batch_size_is_bounded() -> None:
    with pytest.raises(ConfigError, match="pg_batch_size"):
        load_settings(pg_batch_size=0)
