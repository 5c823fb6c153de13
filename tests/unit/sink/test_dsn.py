"""A DSN in an error or a log line shows the server, never the password, whatever the DSN's
shape: libpq's parse errors quote the token they stopped at, which may be the password."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from sessionwarden.sink.postgres.dsn import connect_error, describe_dsn, redact, secrets_in

# (DSN, the password its author meant). Hosts are never contacted: every case is parsed only.
SHAPES = [
    ("postgresql://app:Zq8%Tx4w@db.internal:5432/prod", "Zq8%Tx4w"),  # the reported shape
    ("postgresql://app:Zq8%zzTx4w@db.internal/prod", "Zq8%zzTx4w"),
    ("postgresql://app:Kf3@Lm9vQ@db.internal/prod", "Kf3@Lm9vQ"),
    ("postgresql://app:Kf3:Lm9vQ@db.internal/prod", "Kf3:Lm9vQ"),
    ("postgresql://app:Kf3/Lm9vQ@db.internal/prod", "Kf3/Lm9vQ"),
    ("postgresql://app@db.internal/prod?password=Wr7%Yp2x", "Wr7%Yp2x"),
    ("postgresql://app@db.internal/prod?password=Wr7Yp2x&bogus=1", "Wr7Yp2x"),
    ("postgres://app:Zq8Tx4w@db.internal/prod?sslmode=nope", "Zq8Tx4w"),
    ("host=db.internal user=app password=Hn5%Rt8q bogus=1", "Hn5%Rt8q"),
    ("host=db.internal user=app password=Hn5 Rt8q", "Hn5 Rt8q"),
    ("host=db.internal user=app password='Hn5 Rt8q", "Hn5 Rt8q"),
    ("host=db.internal user=app password='Hn5\\'Rt8q' sslmode=nope", "Hn5'Rt8q"),
]


def pieces(password: str) -> list[str]:
    """The password and every piece of it a parser could have cut out (3+ characters)."""
    return [password, *(p for p in re.split(r"[@:/%'\s]+", password) if len(p) >= 3)]


def libpq_error(dsn: str) -> psycopg.Error | None:
    try:
        conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        return exc
    return None


@pytest.mark.parametrize(("dsn", "password"), SHAPES)
def test_no_piece_of_the_password_reaches_an_error_or_a_description(
    dsn: str, password: str
) -> None:
    """What the sink prints for a DSN (its description, libpq's error) hides every piece."""
    shown = [describe_dsn(dsn)]
    exc = libpq_error(dsn)
    if exc is not None:
        shown.append(connect_error(dsn, exc))
    for text in shown:
        for piece in pieces(password):
            assert piece not in text, text


def test_libpq_parse_error_of_the_reported_shape_is_redacted() -> None:
    """An unencoded % made libpq quote the whole password; the line keeps the cause only."""
    dsn = "postgresql://app:Zq8%Tx4w@db.internal:5432/prod"
    exc = libpq_error(dsn)
    assert exc is not None and "Zq8%Tx4w" in str(exc)  # what libpq says, unredacted
    line = connect_error(dsn, exc)
    assert line.startswith('invalid percent-encoded token: "***"'), line
    assert "percent-encode" in line


def test_a_well_formed_dsn_is_described_and_its_errors_keep_their_names() -> None:
    """Redaction hides the password only: the server, user and database stay readable."""
    dsn = "postgresql://app:Zq8Tx4w@db.internal:6432/prod"
    assert "app@db.internal:6432/prod" == describe_dsn(dsn)
    text = 'connection to server at "db.internal", port 6432 failed: database "prod" missing'
    assert text == redact(text, dsn)
    assert ["Zq8Tx4w"] == secrets_in(dsn)


def test_a_dsn_without_a_password_hides_nothing() -> None:
    assert [] == secrets_in("host=db.internal user=app dbname=prod")
    assert "app@db.internal:5432/prod" == describe_dsn("host=db.internal user=app dbname=prod")
