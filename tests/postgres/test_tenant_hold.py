"""A mass revocation's hold on a real PostgreSQL server: every session of the tenant refused from
the first tenant_revocation copy, released by the sink only once every partition of the topic
is stored through the end offsets taken when the complete copy was read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from sessionwarden.contracts.codec import encode
from sessionwarden.sink.postgres.plan import RawRecord, plan_batch
from sessionwarden.sink.postgres.store import RevocationStore
from sessionwarden.testing.pg_sandbox import Sandbox, refused
from tests.unit.sdk.fakes import at, revocation, tenant_revocation

TOPIC = "t.sessionwarden.revocations"
KEEP = timedelta(hours=1)


@pytest.fixture
def app(pg_sandbox: Sandbox) -> Iterator[psycopg.Connection[Any]]:
    pg_sandbox.add_documents("acme", "doc")
    pg_sandbox.add_documents("other", "doc")
    with psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as conn:
        yield conn


def write(store: RevocationStore, partition: int, *models: object, **kw: Any) -> int:
    """Store records at the next offsets of ``partition``, as the sink would."""
    seen = store.offsets([0, 1])
    records = [
        RawRecord(partition, seen[partition] + i, encode(m))  # type: ignore[arg-type]
        for i, m in enumerate(models)
    ]
    return store.write(plan_batch(records, at(1), KEEP), seen, **kw)


def test_a_tenant_is_refused_from_its_hold_until_every_row_is_stored(
    store: RevocationStore, app: psycopg.Connection[Any]
) -> None:
    """Refused at once (a session that never gets a row of its own too, while held); after
    the release only the revoked sessions stay refused; another tenant is never touched."""
    write(store, 0, tenant_revocation(partition=5))
    held = [refused(app, t, s) for t, s in (("acme", "s1"), ("acme", "new"), ("other", "s1"))]
    # The complete copy read on partition 0; partition 1 ends at offset 1 (one row to come).
    waiting = write(store, 0, tenant_revocation(complete=True, partition=5), ends={0: 2, 1: 1})
    still = refused(app, "acme", "new")
    after = write(store, 1, revocation("s1", 0, "operator"))

    assert ([True, True, False], 1, True, 0) == (held, waiting, still, after)
    assert [True, False] == [refused(app, "acme", s) for s in ("s1", "new")]


def test_a_hold_is_released_by_the_sinks_own_positions_past_transaction_markers(
    store: RevocationStore, app: psycopg.Connection[Any]
) -> None:
    """Stored offsets never name a commit marker; the consumer's position does, so the last
    partition to be read through its end releases the hold without waiting for a record."""
    write(store, 0, tenant_revocation(partition=5))
    write(store, 0, tenant_revocation(complete=True, partition=5), ends={0: 3, 1: 0})

    waiting = store.release({0: 2})
    released = store.release({0: 3})

    assert (1, 0, False) == (waiting, released, refused(app, "acme", "new"))
