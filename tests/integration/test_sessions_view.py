"""`sessionwarden sessions` against the real broker and a real enforcer: the live sessions of
the enforcer's committed state, per tenant, hashed by default."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.engine.sessions import (
    SESSION,
    Session,
    changelog_key,
    encode_session_value,
)
from sessionwarden.enforcer.live_reader import read_live_sessions
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import (
    REPO,
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    logout_doc,
    open_changelog_transaction,
    parse_ts,
    service_env,
    wait_until,
)

POLICY = """
name = "sessions-view"
clock_skew_tolerance = "30s"
hard_cap_absolute = "2h"

[defaults]
idle = "10m"
absolute = "1h"

[risk_profiles.low]
idle = "2s"
absolute = "3s"

[roles.viewer]
privilege = 10
"""


def _sessions(settings: Settings, policy: Path, *args: str, **env: str) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "sessionwarden", "sessions", *args],
        cwd=REPO,
        env={
            **service_env(settings, policy),
            "PYTHONPATH": "streams:.",
            "PATH": "/usr/bin:/bin",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def _of(doc: dict[str, Any], tenant: str) -> dict[str, Any]:
    return {**doc, "tenant": tenant}


def test_live_sessions_are_listed_with_their_deadlines_and_ended_ones_disappear(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """The operator's listing is the enforcer's committed state: what it enforces next."""
    settings = settings_factory()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    collector = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    t0 = time.time()
    proc = EnforcerProcess(settings, policy=policy)
    try:
        proc.wait_assigned()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("live-1", "u-a", t0))
            pub.publish(login_doc("live-2", "u-b", t0))
            pub.publish(activity_doc("live-2", "u-b", t0 + 1))
            pub.publish(login_doc("out-1", "u-a", t0))
            pub.publish(login_doc("short-1", "u-a", t0, risk="low"))  # idle 2 s
            pub.publish(_of(login_doc("other-1", "u-a", t0), "globex"))
            pub.publish(logout_doc("out-1", "u-a", t0 + 0.5))
        wait_until(
            lambda: collector.docs(session_id="short-1"), 30, "the short session's revocation"
        )

        def listed() -> list[dict[str, Any]]:
            run = _sessions(settings, policy, "--tenant", "acme", "--json")
            assert 0 == run.returncode, run.stderr
            return [orjson.loads(line) for line in run.stdout.splitlines()]

        docs = wait_until(lambda: len(listed()) == 2 and listed(), 30, "two live sessions")
        text = _sessions(settings, policy, "--tenant", "acme")
        globex = read_live_sessions(settings, "globex")
        nobody = _sessions(settings, policy, "--tenant", "acme", "--user", "u-nobody")
    finally:
        proc.stop()
        collector.close()

    hashed = SessionHasher("test-salt")  # the salt service_env gives every process
    by_hash = {d["session_hash"]: d for d in docs}
    assert {hashed("live-1"), hashed("live-2")} == set(by_hash)
    one, two = by_hash[hashed("live-1")], by_hash[hashed("live-2")]
    assert ("u-a", "acme", "idle_timeout") == (one["user_id"], one["tenant"], one["ends_by"])
    assert abs(parse_ts(one["started_at"]) - t0) < 1
    assert abs(parse_ts(one["idle_deadline"]) - (t0 + 600)) < 1
    assert abs(parse_ts(one["absolute_deadline"]) - (t0 + 3600)) < 1
    assert abs(parse_ts(two["last_activity"]) - (t0 + 1)) < 1
    assert abs(parse_ts(two["idle_deadline"]) - (t0 + 601)) < 1
    assert 0 == text.returncode, text.stderr
    assert "2 live sessions for tenant acme" in text.stdout
    assert not any(sid in text.stdout + str(docs) for sid in ("live-1", "live-2", "other-1"))
    assert ["other-1"] == [s.session_id for s in globex.sessions]
    assert (0, "no live sessions for user u-nobody of tenant acme\n") == (
        nobody.returncode,
        nobody.stdout,
    )


def test_raw_ids_are_printed_only_where_the_settings_allow_them(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """Raw ids need the flag and the deployment's permission; the refusal reads nothing."""
    settings = settings_factory()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    proc = EnforcerProcess(settings, policy=policy)
    try:
        proc.wait_assigned()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("raw-1", "u-r", time.time()))
        wait_until(
            lambda: read_live_sessions(settings, "acme").sessions, 30, "the session in the view"
        )
    finally:
        proc.stop()

    refused = _sessions(settings, policy, "--tenant", "acme", "--raw-ids")
    allowed = _sessions(
        settings, policy, "--tenant", "acme", "--raw-ids", "--json",
        SESSIONWARDEN_SESSIONS_ALLOW_RAW_IDS="true",
    )  # fmt: skip

    assert (2, "") == (refused.returncode, refused.stdout)
    assert "sessions_allow_raw_ids" in refused.stderr
    assert 0 == allowed.returncode, allowed.stderr
    assert ["raw-1"] == [orjson.loads(line)["session_id"] for line in allowed.stdout.splitlines()]


def test_an_unreachable_broker_is_one_line_and_exit_2(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """An operator at 3 a.m. needs the cause, not a librdkafka retry loop."""
    settings = settings_factory(provision=False)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)

    started = time.monotonic()
    run = _sessions(
        settings, policy, "--tenant", "acme", "--timeout", "3",
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
    )  # fmt: skip

    assert 2 == run.returncode
    assert run.stderr.startswith("sessionwarden: cannot reach Kafka at 127.0.0.1:1 within 3 s")
    assert time.monotonic() - started < 30


def test_a_missing_changelog_topic_is_named(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """A wrong topic prefix must not read as "no live sessions"."""
    settings = settings_factory(provision=False)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)

    run = _sessions(settings, policy, "--tenant", "acme")

    assert (2, "") == (run.returncode, run.stdout)
    assert (
        f"sessionwarden: changelog {settings.topics.enforcer_state}: no such topic "
        "(has an enforcer run with these topic settings?)\n"
    ) == run.stderr


def test_an_open_transaction_on_the_changelog_is_neither_waited_for_nor_seen(
    settings_factory: Callable[..., Settings],
) -> None:
    """A dead owner's transaction must not hang the listing, nor show uncommitted state."""
    settings = settings_factory()
    committed = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 3})
    t0 = time.time()
    live = Session(
        ("acme", "c-1"), "u-c", "customer", "medium", t0, t0, t0, 600.0, t0 + 3600, (), ()
    )
    uncommitted = Session(
        ("acme", "z-1"), "u-z", "customer", "medium", t0, t0, t0, 600.0, t0 + 3600, (), ()
    )
    committed.produce(
        settings.topics.enforcer_state,
        encode_session_value(live),
        changelog_key(SESSION, live.key),
        partition=0,
    )
    assert 0 == committed.flush(10)
    zombie = open_changelog_transaction(settings, 0)
    try:
        zombie.produce(
            settings.topics.enforcer_state,
            encode_session_value(uncommitted),
            changelog_key(SESSION, uncommitted.key),
            partition=0,
        )
        assert 0 == zombie.flush(10)
        started = time.monotonic()
        listing = read_live_sessions(settings, "acme", timeout=20)
        took = time.monotonic() - started
    finally:
        zombie.abort_transaction(10)

    assert ["c-1"] == [s.session_id for s in listing.sessions]
    assert took < 10


BARE = """
import sys
from sessionwarden.cli.extras import provided_by
for module in provided_by("audit"):  # as on `pip install sessionwarden` without extras
    sys.modules[module] = None
from sessionwarden.cli.main import main
sys.exit(main(["sessions", "--tenant", "acme", "--timeout", "2"]))
"""


def test_the_command_runs_without_the_packages_extras() -> None:
    """The listing is an operator's tool on any host with the SDK installed (EXTRA None)."""
    run = subprocess.run(
        [sys.executable, "-c", BARE],
        cwd=REPO,
        env={"PYTHONPATH": "streams:.", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert 2 == run.returncode
    assert run.stderr.startswith("sessionwarden: cannot reach Kafka at 127.0.0.1:1"), run.stderr
