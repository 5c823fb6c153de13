"""PostgreSQL fixtures: one throwaway cluster per test session (or the server of
$SESSIONWARDEN_TEST_PG_DSN, a superuser DSN), and a sandbox database with its own roles per test.
Tests that use them are marked `postgres`."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.testing import services
from sessionwarden.testing.pg_cluster import TempCluster
from sessionwarden.testing.pg_sandbox import Sandbox
from tests.integration.harness import FAST_POLICY, REPO, EnforcerProcess

# The shipped policy: nothing times out within a test, and the sink keeps rows for hours.
SHIPPED_POLICY = REPO / "streams/sessionwarden/policy/shipped/default.toml"


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """A superuser DSN: the given server, else a cluster started for this test session."""
    given = os.environ.get("SESSIONWARDEN_TEST_PG_DSN")
    if given:
        yield given
        return
    with TempCluster() as cluster:
        yield cluster.dsn()


@pytest.fixture
def pg_sandbox(pg_admin_dsn: str) -> Iterator[Sandbox]:
    """A database of this test only: schema migrated, sample table protected, roles sink /
    owner / app (the app role is neither superuser nor owner)."""
    box = Sandbox.create(pg_admin_dsn, f"sw_{uuid.uuid4().hex[:12]}")
    yield box
    box.drop()


@pytest.fixture
def pg_bare_sandbox(pg_admin_dsn: str) -> Iterator[Sandbox]:
    """Like pg_sandbox, without the schema (for `--init` and missing-schema tests)."""
    box = Sandbox.create(pg_admin_dsn, f"sw_{uuid.uuid4().hex[:12]}", migrate=False)
    yield box
    box.drop()


def running(box: Sandbox, application_name: str) -> bool:
    """A backend so named is sleeping in a statement (the superuser sees every backend's state)."""
    with psycopg.connect(box.admin_dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND state = 'active' AND wait_event = 'PgSleep'",
            (application_name,),
        ).fetchone()
    return row is not None and row[0] == 1


class SinkProcess(services.SinkProcess):
    """`sessionwarden sink postgres` in a subprocess, on the tests' fast policy unless told."""

    def __init__(
        self, settings: Settings, dsn: str, policy: Path = FAST_POLICY, **env: str
    ) -> None:
        super().__init__(settings, dsn, policy, cwd=REPO, **env)


@contextlib.contextmanager
def enforcer_and_sink(
    settings: Settings,
    box: Sandbox,
    enforcer_policy: Path = FAST_POLICY,
    sink_policy: Path = FAST_POLICY,
) -> Iterator[SinkProcess]:
    """The enforcer and the sink into ``box`` running on ``settings``, both assigned: the sink."""
    with (
        EnforcerProcess(settings, policy=enforcer_policy) as enforcer,
        SinkProcess(settings, box.sink_dsn, sink_policy) as sink,
    ):
        enforcer.wait_assigned()
        sink.wait_assigned()
        yield sink
