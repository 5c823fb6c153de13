"""The enforcer against the real broker: deadlines, role removal, poison records."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import decode_revocation_record, encode_dict
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.policy import load_policy
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import (
    FAST_POLICY,
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    parse_ts,
    role_change_doc,
    wait_until,
)


@pytest.fixture
def env(settings_factory: Callable[..., Settings]) -> Iterator[tuple[Settings, EnforcerProcess]]:
    settings = settings_factory()
    proc = EnforcerProcess(settings)
    try:
        proc.wait_assigned()
        yield settings, proc
    finally:
        proc.stop()


def test_idle_and_absolute_deadlines_revoke_without_further_input(
    env: tuple[Settings, EnforcerProcess],
) -> None:
    """Deadlines fire on wall-clock time even when the user and the partition go silent."""
    settings, _ = env
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    now = time.time()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        pub.publish(login_doc("idle-1", "u-idle", now))  # medium: idle 3s
        pub.publish(login_doc("abs-1", "u-abs", now, risk="low"))  # low: idle 6s, absolute 8s
    keepalive_until = now + 10
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        t = now + 2
        while t < keepalive_until:
            wait_until(lambda t=t: time.time() >= t, 5, "the next keep-alive")
            pub.publish(activity_doc("abs-1", "u-abs", time.time()))
            pub.flush()
            t += 2
    rows = wait_until(
        lambda: len(revocations.docs()) >= 2 and revocations.timed(), 10, "two revocations"
    )
    revocations.close()
    by_session = {d["session_id"]: (t, d) for t, d in rows}
    seen_idle, idle = by_session["idle-1"]
    seen_abs, absolute = by_session["abs-1"]
    assert ("idle_timeout", "absolute_timeout") == (idle["reason"], absolute["reason"])
    assert pytest.approx(now + 3, abs=0.01) == parse_ts(idle["effective_at"])
    assert pytest.approx(now + 8, abs=0.01) == parse_ts(absolute["effective_at"])
    assert 0 <= seen_idle - parse_ts(idle["effective_at"]) < 2.0
    assert 0 <= seen_abs - parse_ts(absolute["effective_at"]) < 2.0


def test_role_removal_revokes_every_affected_session(
    env: tuple[Settings, EnforcerProcess],
) -> None:
    """One role change ends all live sessions holding the role, and only those."""
    settings, _ = env
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    now = time.time()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        pub.publish(login_doc("r1", "u-roles", now, ["viewer", "editor"], risk="low"))
        pub.publish(login_doc("r2", "u-roles", now, ["editor"], risk="low"))
        pub.publish(login_doc("r3", "u-roles", now, ["viewer"], risk="low"))
        pub.publish(role_change_doc("u-roles", now + 0.5, removed=["editor"]))
    docs = wait_until(
        lambda: (
            revocations.docs(reason="permissions_revoked")
            if len(revocations.docs(reason="permissions_revoked")) >= 2
            else None
        ),
        10,
        "two permission revocations",
    )
    time.sleep(0)  # the condition above already waited; nothing else is expected before idle
    revocations.close()
    assert ["r1", "r2"] == sorted(d["session_id"] for d in docs)
    assert [["editor"], ["editor"]] == [d["roles_removed"] for d in docs]
    assert [] == [
        d
        for d in revocations.docs()
        if d["session_id"] == "r3" and d["reason"] == "permissions_revoked"
    ]


def test_a_login_beyond_the_session_cap_revokes_the_users_oldest_session(
    env: tuple[Settings, EnforcerProcess],
) -> None:
    """One user holds at most max_sessions_per_user live sessions: the login past it ends the
    oldest, in a record gateways decode strictly, so no role change can fan out further."""
    settings, _ = env
    cap = load_policy(FAST_POLICY).max_sessions_per_user
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    now = time.time()
    logins = [
        login_doc(f"cap-{i:04d}", "u-cap", now + i * 0.001, risk="low") for i in range(cap + 1)
    ]
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
        for doc in logins:
            pub.publish(doc)
    [doc] = wait_until(
        lambda: revocations.docs(reason="session_limit"), 10, "the session_limit revocation"
    )
    revocation = decode_revocation_record(encode_dict(doc))
    revocations.close()
    assert isinstance(revocation, Revocation)
    assert ("cap-0000", "session_limit") == (revocation.session_id, revocation.reason)
    assert logins[-1]["event_id"] == str(revocation.cause_event_id)
    assert pytest.approx(now + cap * 0.001, abs=0.001) == revocation.effective_at.timestamp()
    assert [doc] == [d for d in revocations.docs() if d["user_id"] == "u-cap"]


def test_poison_records_are_dead_lettered_and_processing_goes_on(
    env: tuple[Settings, EnforcerProcess],
) -> None:
    """Hostile bytes never stop the worker: they land in the DLQ with the reason and bytes."""
    settings, proc = env
    dlq = Collector(settings.kafka.bootstrap_servers, settings.topics.dlq)
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    now = time.time()
    # Compressed: the broker's max.message.bytes applies to the compressed batch, so an oversized
    # record can still reach the enforcer, whose decoder must refuse it.
    compressed = {"compression.type": "zstd"}
    with AuthEventPublisher(
        settings.kafka.bootstrap_servers, settings.topics.input, **compressed
    ) as pub:
        pub.publish_raw(b"u-p", b"\xff\xfenot json")
        pub.publish_raw(b"u-p", b'{"type": "teleport", "user_id": "u-p"}')
        pub.publish_raw(b"u-p", b"{" + b" " * 70_000 + b"}")
        future = login_doc("p-future", "u-p", now + 3600)
        pub.publish(future)
        pub.publish(login_doc("p-ok", "u-p", now))
    dead = wait_until(lambda: dlq.docs() if len(dlq.docs()) >= 4 else None, 15, "4 dead letters")
    assert ["future_timestamp", "oversized", "undecodable", "unknown_type"] == sorted(
        d["reason"] for d in dead
    )
    assert all(d["source_topic"] == settings.topics.input for d in dead)
    wait_until(lambda: revocations.docs(session_id="p-ok"), 10, "the valid login's revocation")
    assert proc.proc.poll() is None
    dlq.close()
    revocations.close()
