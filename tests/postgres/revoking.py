"""What the cut-off tests share: a store on the sandbox's sink role over 200 documents of
tenant acme, and a revocation written through it as the sink writes one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from sessionwarden.contracts.codec import encode
from sessionwarden.sink.postgres.plan import RawRecord, plan_batch
from sessionwarden.sink.postgres.store import RevocationStore
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.unit.sdk.fakes import at, revocation

TOPIC = "t.sessionwarden.revocations"
QUERY = "SELECT id FROM app.documents ORDER BY id"


@pytest.fixture
def store(pg_sandbox: Sandbox) -> Iterator[RevocationStore]:
    pg_sandbox.add_documents("acme", *(f"doc {n}" for n in range(200)))
    with psycopg.connect(pg_sandbox.sink_dsn, autocommit=True) as conn:
        yield RevocationStore(conn, TOPIC)


def revoke(store: RevocationStore, sid: str) -> None:
    seen = store.offsets([0])
    record = RawRecord(0, seen[0], encode(revocation(sid, 0, tenant="acme")))
    store.write(plan_batch([record], at(1), timedelta(hours=1)), seen)
