"""The enforcer's /metrics, /healthz and /readyz, scraped from a real running process."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.kafka.topics import ensure_topics, topic_specs
from sessionwarden.sdk.publisher import AuthEventPublisher
from tests.integration.harness import (
    EnforcerProcess,
    login_doc,
    open_changelog_transaction,
    wait_until,
)
from tests.integration.private_broker import private_broker
from tests.integration.scrape import probe, probe_until, scrape, value

NS = "sessionwarden_enforcer"


def test_a_login_its_idle_revocation_and_a_poison_record_move_their_series(
    settings_factory: Callable[..., Settings],
) -> None:
    """An operator sees traffic, revocations by reason, their delay and dead letters by reason."""
    settings = settings_factory()
    with EnforcerProcess(settings) as proc:
        proc.wait_assigned()
        base = proc.metrics_url()
        wait_until(lambda: 200 == probe(base, "/readyz")[0], 30, "the enforcer to be ready")
        before = scrape(base)
        assert 0 == value(before, f"{NS}_revocations_total", reason="idle_timeout")
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("obs-1", "u-obs", time.time()))  # medium: idle 3s
            pub.publish_raw(b"u-obs", b"\xff\xfenot json")

        def revoked() -> object:
            now = scrape(base)
            return now if value(now, f"{NS}_revocations_total", reason="idle_timeout") else None

        after = wait_until(revoked, 20, "the idle revocation to be counted")
        assert 1 == value(after, f"{NS}_revocations_total", reason="idle_timeout")
        assert 1 == value(after, f"{NS}_events_total", type="login", outcome="applied")
        assert 1 == value(after, f"{NS}_dead_letters_total", reason="undecodable")
        assert 1 == value(after, f"{NS}_revocation_delay_seconds_count")
        # Fired within the lag grace (2s) plus a few batches of the deadline.
        assert value(after, f"{NS}_revocation_delay_seconds_bucket", le="5.0") == 1
        assert value(after, f"{NS}_batches_total") > value(before, f"{NS}_batches_total")
        assert value(after, f"{NS}_commit_duration_seconds_count") > 0
        assert 3 == value(after, f"{NS}_assigned_partitions")
        assert 200 == probe(base, "/healthz")[0]


def test_readyz_is_false_while_a_partition_restores_and_true_after(
    settings_factory: Callable[..., Settings],
) -> None:
    """A dead owner's transaction still open on changelog partition 1 holds that partition's
    restore (read_committed): /readyz says restoring, naming it, while the loop goes on
    (/healthz stays healthy: restores run a slice per loop turn). Once the transaction ends
    the partition is restored and the enforcer becomes ready."""
    settings = settings_factory()
    zombie = open_changelog_transaction(settings, partition=1)
    with EnforcerProcess(settings, SESSIONWARDEN_HEALTH_STALL_S="2") as proc:
        base = proc.metrics_url()
        status, _ = probe_until(
            base,
            "/readyz",
            lambda _, b: b["status"] == "restoring" and [1] == b["partitions"],
            30,
            "partition 1 reported restoring, alone",
        )
        assert 503 == status
        assert 1 == value(scrape(base), f"{NS}_restoring")
        # The loop keeps stepping while partition 1 restores, so it stays healthy.
        _, health = probe_until(
            base, "/healthz", lambda s, b: s == 200, 10, "a healthy loop during the restore"
        )
        assert 1 == health["restoring"]
        assert 503 == probe(base, "/readyz")[0]
        zombie.abort_transaction(30)
        wait_until(lambda: 200 == probe(base, "/readyz")[0], 30, "the enforcer to be ready")
        assert 200 == probe(base, "/healthz")[0]
        samples = scrape(base)
        assert 0 == value(samples, f"{NS}_restoring")
        assert 3 == value(samples, f"{NS}_restore_duration_seconds_count")


def test_healthz_turns_unhealthy_while_the_broker_hangs_and_recovers_after(
    tmp_path: Path,
) -> None:
    """A hung broker blocks the loop in broker round trips; the probe, served from its own
    thread, says so within the stall budget, and turns healthy again once the broker answers."""
    with private_broker(tmp_path) as broker:
        settings = load_settings(
            bootstrap_servers=broker.bootstrap_servers,
            topic_prefix="hang.",
            partitions=1,
            group_id="hang.enforcer",
        )
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        ensure_topics(admin, topic_specs(settings, 86400), report=lambda _: None)
        # The group session outlives the hang (the harness's 3 s would end it first: the
        # consumer then drops its partition and has no deadline left to block on).
        with EnforcerProcess(
            settings, SESSIONWARDEN_HEALTH_STALL_S="2", SESSIONWARDEN_SESSION_TIMEOUT_MS="30000"
        ) as proc:
            proc.wait_assigned()
            base = proc.metrics_url()
            wait_until(lambda: 200 == probe(base, "/readyz")[0], 30, "the enforcer to be ready")
            with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
                # idle deadline in 6 s: it falls due after the freeze below, which follows the
                # login's commit (a 3 s one could fire first on a loaded machine)
                pub.publish(login_doc("hang-1", "u-hang", time.time(), risk="low"))
            wait_until(
                lambda: value(scrape(base), f"{NS}_events_total", type="login", outcome="applied"),
                30,
                "the login to be committed",
            )
            broker.freeze()  # the due deadline now needs a broker round trip that hangs
            fired = value(scrape(base), f"{NS}_revocations_total", reason="idle_timeout")
            assert 0 == fired, "the deadline fired before the broker hung: nothing to block on"
            try:
                _, body = probe_until(
                    base, "/healthz", lambda s, _: s == 503, 60, "the hung loop to be unhealthy"
                )
                assert "loop stalled" == body["status"]
            finally:
                broker.thaw()
            probe_until(base, "/healthz", lambda s, _: s == 200, 90, "the loop to recover")
