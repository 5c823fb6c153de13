"""`sessionwarden revoke` against the real broker and a real enforcer: operator commands end a
session, a user's sessions or a tenant's, in the enforcer's transaction, audited; a repeat
changes nothing; bad commands are dead-lettered and change nothing; the listener refuses the
revoked sessions."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from sessionwarden.config.settings import Settings
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import (
    REPO,
    Collector,
    EnforcerProcess,
    login_doc,
    service_env,
    wait_until,
)

POLICY = """
name = "operator-revoke"
clock_skew_tolerance = "30s"
hard_cap_absolute = "2h"

[defaults]
idle = "10m"
absolute = "1h"

[roles.viewer]
privilege = 10
"""


def _revoke(settings: Settings, policy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sessionwarden", "revoke", "--timeout", "30", *args],
        cwd=REPO,
        env={**service_env(settings, policy), "PYTHONPATH": "streams:.", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=90,
    )


def _command(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "revoke_sessions",
        "schema_version": 1,
        "command_id": str(uuid.uuid4()),
        "issued_at": datetime.now(UTC).isoformat(),
        "tenant": "acme",
        "scope": "user",
        "user_id": "u-g",
        "operator": "User:sessionwarden-operator",
        "reason_admin": "test",
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def _of(doc: dict[str, Any], tenant: str) -> dict[str, Any]:
    return {**doc, "tenant": tenant}


def test_operator_commands_end_sessions_in_the_enforcers_transaction_and_are_audited(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """One session, a user's sessions, a tenant's: each ended now, audited with the operator
    and the reason; the same command again, an unknown user and bad commands change nothing;
    the service's listener refuses what was revoked."""
    settings = settings_factory()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    dlq = Collector(settings.kafka.bootstrap_servers, settings.topics.dlq)
    listener = RevocationListener(
        settings.kafka.bootstrap_servers, settings.topics.revocations, max_lifetime_s=3600
    )
    proc = EnforcerProcess(settings, policy=policy)
    t0 = time.time()
    try:
        proc.wait_assigned()
        listener.start()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            for sid, user in (("s-a1", "u-a"), ("s-a2", "u-a"), ("s-b1", "u-b"), ("s-b2", "u-b")):
                pub.publish(login_doc(sid, user, t0))
            pub.publish(login_doc("s-c1", "u-c", t0))
            pub.publish(login_doc("s-g1", "u-g", t0))
            pub.publish(_of(login_doc("s-x1", "u-a", t0), "globex"))
        wait_until(
            lambda: len(audit.docs(type="session_started")) == 7, 30, "seven sessions started"
        )

        one = _revoke(settings, policy, "--tenant", "acme", "--session", "s-c1",
                      "--reason-admin", "laptop stolen")  # fmt: skip
        user = _revoke(settings, policy, "--tenant", "acme", "--user", "u-a",
                       "--reason-admin", "account compromised, SEC-42")  # fmt: skip
        again = _revoke(settings, policy, "--tenant", "acme", "--user", "u-a",
                        "--reason-admin", "account compromised, SEC-42")  # fmt: skip
        unknown = _revoke(settings, policy, "--tenant", "acme", "--user", "u-nobody",
                          "--reason-admin", "typo")  # fmt: skip
        tenant = _revoke(settings, policy, "--tenant", "acme", "--all-users",
                         "--reason-admin", "tenant offboarded")  # fmt: skip
        ended_by_operator = {d["session_id"] for d in revocations.docs(reason="operator")}

        # The very same command (same id) again, then bad commands: none ends a session.
        applied = audit.docs(type="operator_command_applied", target_user_id="u-a")
        replay = _command(
            command_id=applied[0]["command_id"], user_id="u-a",
            issued_at=applied[0]["issued_at"], reason_admin=applied[0]["reason_admin"],
        )  # fmt: skip
        producer = Producer(  # murmur2, as the CLI and the publisher: keys land with events
            {"bootstrap.servers": settings.kafka.bootstrap_servers, "partitioner": "murmur2_random"}
        )
        bad = {
            "schema_violation": _command(reason_admin=None),
            "undecodable": None,
            "operator_not_allowed": _command(operator="User:intern"),
            "unknown_type": _command(type="drop_tenant"),
        }
        producer.produce(settings.topics.commands, orjson.dumps(replay), b"u-a")
        for doc in bad.values():
            value = b"{not json" if doc is None else orjson.dumps(doc)
            producer.produce(settings.topics.commands, value, b"u-g")
        assert 0 == producer.flush(10)
        wait_until(lambda: len(dlq.docs()) >= len(bad), 30, "the bad commands dead-lettered")
        sentinel = _revoke(settings, policy, "--tenant", "acme", "--user", "u-nobody-2",
                           "--reason-admin", "sentinel")  # fmt: skip
        wait_until(lambda: listener.is_revoked("acme", "s-a1"), 30, "the listener's revocation")
        listener_view = {
            sid: listener.is_revoked(tenant, sid)
            for tenant, sid in (("acme", "s-a1"), ("acme", "s-c1"), ("acme", "s-b2"),
                                ("globex", "s-x1"))
        }  # fmt: skip
    finally:
        proc.stop()
        listener.close()
        for collector in (revocations, audit, dlq):
            collector.close()

    assert (0, "revoked 1 session of session s-c1 of tenant acme") == (
        one.returncode, one.stdout.split(";")[0],
    ), one.stderr  # fmt: skip
    assert (0, "revoked 2 sessions of user u-a of tenant acme") == (
        user.returncode, user.stdout.split(";")[0],
    ), user.stderr  # fmt: skip
    assert (1, 1) == (again.returncode, unknown.returncode), again.stderr + unknown.stderr
    assert unknown.stdout.startswith("nothing revoked: no live session for user u-nobody")
    assert (0, "revoked 3 sessions of every user of tenant acme") == (
        tenant.returncode, tenant.stdout.split(";")[0],
    ), tenant.stderr  # fmt: skip
    assert 1 == sentinel.returncode, sentinel.stderr
    assert {"s-c1", "s-a1", "s-a2", "s-b1", "s-b2", "s-g1"} == ended_by_operator
    assert ended_by_operator == {d["session_id"] for d in revocations.docs(reason="operator")}
    assert [] == revocations.docs(session_id="s-x1")  # the other tenant's session lives on
    assert set(bad) == {d["reason"] for d in dlq.docs()}
    by_reason = {d["reason_admin"]: d for d in audit.docs(type="operator_command_applied")}
    compromised = by_reason["account compromised, SEC-42"]
    assert ("User:sessionwarden-operator", "user", "u-a") == (
        compromised["user_id"], compromised["scope"], compromised["target_user_id"],
    )  # fmt: skip
    assert 3 == sum(d["revoked"] for d in audit.docs(reason_admin="tenant offboarded"))
    assert 3 == len(audit.docs(reason_admin="tenant offboarded"))  # one answer per partition
    assert {"s-c1", "s-a1", "s-a2", "s-b1", "s-b2", "s-g1"} == {
        d["session_id"] for d in audit.docs(type="session_ended", reason="operator")
    }
    assert {"s-a1": True, "s-c1": True, "s-b2": True, "s-x1": False} == listener_view
