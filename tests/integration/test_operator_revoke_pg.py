"""An operator's revocation reaches PostgreSQL: the sink writes it and the guard refuses the
revoked sessions' queries, while the user's other tenant and other users go on."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import psycopg

from sessionwarden.config.settings import Settings
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.pg_sandbox import Sandbox, refused
from tests.integration.harness import REPO, login_doc, service_env, wait_until
from tests.pg import SHIPPED_POLICY, enforcer_and_sink


def test_a_users_sessions_revoked_by_an_operator_are_refused_by_the_database(
    settings_factory: Callable[..., Settings], pg_sandbox: Sandbox
) -> None:
    """The command -> the enforcer's transaction -> the sink -> the guard refuses."""
    settings = settings_factory()
    run = uuid.uuid4().hex[:6]
    mine = [f"op-{run}-1", f"op-{run}-2"]
    other = f"op-{run}-other"
    with (
        enforcer_and_sink(settings, pg_sandbox, enforcer_policy=SHIPPED_POLICY),
        psycopg.connect(pg_sandbox.app_dsn, autocommit=True) as app,
    ):
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            for sid in mine:
                pub.publish(login_doc(sid, "u-victim", time.time()))
            pub.publish(login_doc(other, "u-other", time.time()))
        assert not any(refused(app, "acme", sid) for sid in [*mine, other])
        revoke = subprocess.run(
            [sys.executable, "-m", "sessionwarden", "revoke", "--tenant", "acme",
             "--user", "u-victim", "--reason-admin", "credential stuffing", "--timeout", "30"],
            cwd=REPO,
            env={**service_env(settings, SHIPPED_POLICY), "PYTHONPATH": "streams:.",
                 "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=90,
        )  # fmt: skip
        assert 0 == revoke.returncode, revoke.stderr
        wait_until(
            lambda: all(refused(app, "acme", sid) for sid in mine), 30, "the database to refuse"
        )
        assert not refused(app, "acme", other)
    with psycopg.connect(pg_sandbox.sink_dsn) as db:
        rows = db.execute(
            "SELECT session_id, user_id, reason FROM sessionwarden.revoked_sessions"
            " ORDER BY session_id"
        ).fetchall()
    assert [(sid, "u-victim", "operator") for sid in mine] == rows
