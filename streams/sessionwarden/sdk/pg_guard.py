"""For services: bind a Sessionwarden session to PostgreSQL work, so the row-level guard
(``sessionwarden.require_session()``) lets it through until the session is revoked, and the sink
can find and stop its backend then.

``session_transaction(conn, tenant, session_id)`` opens a transaction bound to the session (the
settings are transaction-local, so a pooled connection, including PgBouncer in transaction mode,
never carries them to the next client); when the session is revoked the sink cancels the
statement it is running, and terminates the backend if it sits idle in the transaction (where
a server-side cursor would keep returning rows) or is still in it half a second later.
``bind_connection`` binds a connection dedicated to one session for its lifetime; the sink
terminates it on revocation. A revoked or unbound session's statement on a protected table
fails with SQLSTATE 28000 (``psycopg.errors.InvalidAuthorizationSpecification``, see
``is_refused``), and so does any guarded statement while the connection holds a ``WITH HOLD``
cursor. Both helpers bind through ``sessionwarden.bind()``, which also asks the guard: a
revoked session's transaction fails at its start even if it would touch no row (row-level
security checks rows: a statement that examines none is not refused by the policy itself), and
the transaction is marked for the cut-off before it reads anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from sessionwarden.contracts.postgres import NOTIFY_CHANNEL, session_tag

__all__ = [
    "NOTIFY_CHANNEL",
    "async_session_transaction",
    "bind_connection",
    "is_refused",
    "session_tag",
    "session_transaction",
]

# Sets the binding and application_name ('swt:'/'swc:' + tag) and asks the guard, in one
# statement (migration 004): the transaction carries the mark the cut-off looks for from here.
_BIND = "SELECT sessionwarden.bind(%s, %s, %s)"
REFUSED_SQLSTATE = "28000"


@contextmanager
def session_transaction(
    conn: psycopg.Connection[Any], tenant: str, session_id: str
) -> Iterator[psycopg.Cursor[Any]]:
    """A transaction bound to the session; yields a cursor. Commits on success, rolls back on an
    exception, like ``conn.transaction()``. Inside an open transaction it is a savepoint, and the
    binding then lasts until that outer transaction ends."""
    outermost = conn.info.transaction_status == TransactionStatus.IDLE
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(_BIND, (tenant, session_id, True))
            yield cur
    except BaseException:
        # A cancel that lands on the closing COMMIT/ROLLBACK (the sink cuts off revoked
        # sessions' statements) can leave the connection inside a failed transaction: end it,
        # so the connection's next transaction starts clean instead of failing forever.
        if outermost and not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            with suppress(psycopg.Error):
                conn.rollback()
        raise


@asynccontextmanager
async def async_session_transaction(
    conn: psycopg.AsyncConnection[Any], tenant: str, session_id: str
) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
    """``session_transaction`` for an ``AsyncConnection``."""
    outermost = conn.info.transaction_status == TransactionStatus.IDLE
    try:
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute(_BIND, (tenant, session_id, True))
            yield cur
    except BaseException:
        if outermost and not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            with suppress(psycopg.Error):
                await conn.rollback()
        raise


def bind_connection(conn: psycopg.Connection[Any], tenant: str, session_id: str) -> None:
    """Bind a connection dedicated to one session, for the rest of its life (the settings are
    session-level, so never use this on a pooled connection). Commits if not in autocommit."""
    conn.execute(_BIND, (tenant, session_id, False))
    if not conn.autocommit:
        conn.commit()


def is_refused(exc: BaseException) -> bool:
    """True for the guard's refusal: the session is revoked or none is bound."""
    return isinstance(exc, psycopg.Error) and exc.sqlstate == REFUSED_SQLSTATE
