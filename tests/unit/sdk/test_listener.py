"""The revocation listener driven step by step over a fake consumer and fake clocks."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError

from sessionwarden.config.settings import load_settings
from sessionwarden.contracts.outputs import Revalidation, Revocation, TenantRevocation
from sessionwarden.sdk.listener import ListenerError, RevocationListener
from sessionwarden.sdk.revocation_set import RevocationSet
from tests.unit.sdk.fakes import (
    T0,
    TOPIC,
    Clock,
    FakeConsumer,
    revalidation,
    revocation,
    tenant_revocation,
    wire,
)

FAST_POLICY = Path(__file__).resolve().parents[2] / "fixtures/policies/fast.toml"
TENANT = "acme"  # the fakes' default tenant
LIFETIME = 100.0
BUDGET = 10.0


class Rig:
    """A listener over a FakeConsumer, with a wall clock and a monotonic clock to move."""

    def __init__(self, partitions: int = 2, **options: Any) -> None:
        self.consumer = FakeConsumer(partitions)
        self.wall = Clock(T0)
        self.mono = Clock(1000.0)
        self.revocations: list[Revocation] = []
        self.revalidations: list[Revalidation] = []
        options.setdefault("max_lifetime_s", LIFETIME)
        options.setdefault("staleness_budget_s", BUDGET)
        self.listener = RevocationListener(
            "unused:9092",
            TOPIC,
            on_revocation=self.revocations.append,
            on_revalidation=self.revalidations.append,
            clock=self.wall,
            monotonic=self.mono,
            consumer_factory=self.consumer.factory,
            admin_factory=self.consumer.admin_factory,
            **options,
        )

    def add(self, record: Revocation | Revalidation | TenantRevocation, partition: int = 0) -> None:
        self.consumer.append(wire(record), partition)

    def start(self) -> RevocationListener:
        self.listener.start(background=False)
        return self.listener

    def steps(self, count: int = 1, seconds: float = 0.1) -> None:
        for _ in range(count):
            self.mono.advance(seconds)
            self.wall.advance(seconds)
            self.listener.step(poll_timeout=0)


def test_bootstrap_rebuilds_the_revocation_set_then_reports_ready() -> None:
    """A restarted service must know every live revocation before it vouches for sessions."""
    rig = Rig()
    rig.add(revocation("s-1"), 0)
    rig.add(revocation("s-2", reason="logout"), 1)
    rig.add(revalidation("s-3"), 1)
    listener = rig.start()
    assert (False, None) == (listener.ready(), listener.revocation(TENANT, "s-1"))
    rig.steps()
    assert listener.ready()
    assert [True, True, False, False] == [
        listener.is_revoked(TENANT, s) for s in ("s-1", "s-2", "s-3", "never-seen")
    ]
    assert "logout" == listener.revocation(TENANT, "s-2").reason  # type: ignore[union-attr]


def test_ready_waits_for_the_end_offsets_captured_at_start_only() -> None:
    """Ready means caught up with the topic as it was at start, not with a moving target."""
    rig = Rig(partitions=1)
    for n in range(5):
        rig.add(revocation(f"s-{n}"))
    rig.consumer.batch = 2
    listener = rig.start()
    rig.add(revocation("late"))  # produced after start: not needed for readiness
    rig.steps(2)
    assert (False, 4) == (listener.ready(), len(listener))
    rig.steps()
    assert listener.ready()


def test_it_reads_committed_data_only_and_never_commits_offsets() -> None:
    """Aborted revocations must not count; committing offsets would share a group's view."""
    rig = Rig()
    rig.start()
    config = rig.consumer.config
    assert ("read_committed", False) == (config["isolation.level"], config["enable.auto.commit"])
    assert [0, 1] == [tp.partition for tp in rig.consumer.assigned]
    levels = {str(request["isolation_level"]) for request in rig.consumer.offset_requests}
    assert {"IsolationLevel.READ_COMMITTED"} == levels, "end offsets are last stable offsets"


def test_a_revalidation_never_undoes_a_revocation() -> None:
    """Ended sessions are never resurrected, whatever arrives later for the same key."""
    rig = Rig()
    rig.add(revocation("s-1"))
    rig.add(revalidation("s-1"))
    listener = rig.start()
    rig.steps()
    assert listener.is_revoked(TENANT, "s-1")
    assert (1, 1) == (len(rig.revocations), len(rig.revalidations))


def test_callbacks_see_every_record_and_a_failing_one_does_not_stop_the_listener() -> None:
    """A bug in a service's callback must not silently stop revocations from arriving."""
    rig = Rig()

    def explode(record: Revocation) -> None:
        raise RuntimeError("callback bug")

    rig.listener.on_revocation = explode
    rig.add(revocation("s-1"))
    listener = rig.start()
    rig.steps()
    rig.add(revocation("s-2"))
    rig.steps()
    assert (True, True) == (listener.is_revoked(TENANT, "s-1"), listener.is_revoked(TENANT, "s-2"))


def test_entries_expire_max_lifetime_after_their_effective_time() -> None:
    """No token outlives the longest absolute timeout, so memory stays bounded."""
    rig = Rig()
    rig.add(revocation("old", effective=-LIFETIME - 1))  # already past its lifetime
    rig.add(revocation("young", effective=0))
    listener = rig.start()
    rig.steps()
    assert (False, True) == (
        listener.is_revoked(TENANT, "old"),
        listener.is_revoked(TENANT, "young"),
    )
    assert [] == [r.session_id for r in rig.revocations if r.session_id == "old"]
    rig.wall.advance(LIFETIME)
    rig.steps()
    assert (False, 0) == (listener.is_revoked(TENANT, "young"), len(listener))


def test_a_repeated_revocation_never_shortens_the_lifetime() -> None:
    """A re-emitted or older revocation must not let an entry expire early."""
    revoked = RevocationSet(max_lifetime_s=LIFETIME)
    revoked.add(revocation("s-1", effective=50), now=T0)
    revoked.add(revocation("s-1", effective=10), now=T0)
    assert 0 == revoked.expire(T0 + 10 + LIFETIME)
    assert revoked.contains(TENANT, "s-1")
    assert 1 == revoked.expire(T0 + 50 + LIFETIME)
    assert 0 == len(revoked)


def test_losing_the_broker_makes_the_listener_unhealthy_after_the_budget() -> None:
    """Silence from a dead broker must not pass for "nothing was revoked"."""
    rig = Rig(fail_closed=False)
    listener = rig.start()
    rig.steps()
    assert listener.healthy()
    rig.consumer.down = True
    rig.steps(int(BUDGET / 2), seconds=1.0)
    assert listener.healthy(), "within the budget"
    rig.steps(int(BUDGET / 2) + 2, seconds=1.0)
    assert (False, False) == (listener.healthy(), listener.is_revoked(TENANT, "any"))


def test_a_broker_that_stops_answering_makes_the_listener_unhealthy() -> None:
    """An unanswered offset request is as bad as a refused one, just slower to notice."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    rig.consumer.hanging = True
    rig.steps(int(BUDGET) + 2, seconds=1.0)
    assert (False, True) == (listener.healthy(), listener.stats.probes_failed > 0)
    rig.consumer.hanging = False
    rig.steps(int(BUDGET / 2), seconds=1.0)
    assert listener.healthy()


def test_fail_closed_treats_every_session_as_revoked_until_caught_up_again() -> None:
    """Fail-closed (the default) trades availability for never honouring a revoked session."""
    rig = Rig()
    listener = rig.start()
    assert listener.is_revoked(TENANT, "any"), "not bootstrapped yet"
    rig.steps()
    assert not listener.is_revoked(TENANT, "any")
    rig.consumer.down = True
    rig.steps(int(BUDGET) + 2, seconds=1.0)
    assert listener.is_revoked(TENANT, "any")
    rig.consumer.down = False
    rig.steps(2, seconds=1.0)
    assert (True, False) == (listener.healthy(), listener.is_revoked(TENANT, "any"))


def test_a_listener_that_lags_behind_the_end_offsets_is_unhealthy() -> None:
    """Reachable but behind is as stale as disconnected."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    rig.consumer.paused = True
    rig.add(revocation("unread"))
    rig.steps(int(BUDGET) + 2, seconds=1.0)
    assert not listener.healthy()
    rig.consumer.paused = False
    rig.steps(1, seconds=1.0)
    assert listener.is_revoked(TENANT, "unread")
    assert not listener.healthy(), "caught up only with end offsets asked for long ago"
    rig.steps(1, seconds=1.0)
    assert listener.healthy()


def test_fail_open_logs_loudly_when_stale(caplog: pytest.LogCaptureFixture) -> None:
    """Fail-open is only acceptable if the operators are told at once."""
    rig = Rig(fail_closed=False)
    rig.start()
    rig.steps()
    rig.consumer.down = True
    with caplog.at_level(logging.ERROR, logger="sessionwarden.sdk.listener"):
        rig.steps(int(BUDGET) + 2, seconds=1.0)
    assert 1 == sum("FAIL-OPEN" in r.getMessage() for r in caplog.records)


def test_unreadable_records_and_tombstones_are_skipped() -> None:
    """A poison record on the topic must not stop the listener or revoke anything."""
    rig = Rig(partitions=1)
    rig.consumer.append(b"\xffnot json")
    rig.consumer.append(None)
    rig.add(revocation("s-1"))
    listener = rig.start()
    rig.steps()
    assert (True, 2, 1) == (listener.ready(), listener.stats.skipped, len(listener))


def test_start_refuses_an_unknown_topic() -> None:
    """A typo in the topic name must fail at start, not look like "no revocations"."""
    consumer = FakeConsumer()
    listener = RevocationListener(
        "unused:9092",
        "no-such-topic",
        max_lifetime_s=1,
        consumer_factory=consumer.factory,
        admin_factory=consumer.admin_factory,
    )
    with pytest.raises(ListenerError, match="no-such-topic"):
        listener.start(background=False)


def test_from_settings_keeps_entries_for_the_policys_longest_absolute_timeout() -> None:
    """The default lifetime follows the policy, so it never undercuts a real session."""
    consumer = FakeConsumer()
    settings = load_settings(policy_file=str(FAST_POLICY), topic_prefix="unit.")
    listener = RevocationListener.from_settings(
        settings, consumer_factory=consumer.factory, admin_factory=consumer.admin_factory
    )
    assert (8.0, TOPIC) == (listener.max_lifetime_s, listener.topic)


def test_the_same_session_id_in_two_tenants_names_two_sessions() -> None:
    """Revoking tenant a's session must not revoke tenant b's session of the same id."""
    rig = Rig()
    rig.add(revocation("shared", tenant="a"))
    listener = rig.start()
    rig.steps()
    assert (True, False) == (listener.is_revoked("a", "shared"), listener.is_revoked("b", "shared"))
    assert listener.revocation("b", "shared") is None
    rig.add(revocation("shared", tenant="b", reason="logout"))
    rig.steps()
    reasons = [listener.revocation(t, "shared").reason for t in ("a", "b")]  # type: ignore[union-attr]
    assert ["idle_timeout", "logout"] == reasons


def test_a_bound_view_answers_for_its_tenant_only() -> None:
    """A single-tenant service binds its tenant once and can never see another's revocations."""
    rig = Rig()
    rig.add(revocation("s-1", tenant="a"))
    listener = rig.start()
    rig.steps()
    a, b = listener.bind("a"), listener.bind("b")
    assert (True, False) == (a.is_revoked("s-1"), b.is_revoked("s-1"))
    assert (True, True) == (a.healthy(), a.fail_closed)


def test_the_listener_is_fail_closed_by_default() -> None:
    """A service that forgets to choose must not honour sessions it cannot check."""
    rig = Rig()
    listener = rig.start()
    assert (True, True) == (listener.fail_closed, listener.is_revoked(TENANT, "any"))


def test_a_dead_background_thread_makes_the_listener_unhealthy_at_once() -> None:
    """A frozen set must not keep vouching for sessions until the staleness budget runs out."""
    rig = Rig()
    rig.listener.start(background=True)
    assert rig.listener.wait_ready(5)
    assert rig.listener.healthy()

    def broken_poll(timeout: float) -> None:
        raise RuntimeError("consumer bug")

    rig.consumer.poll = broken_poll  # type: ignore[method-assign,assignment]
    # The fake monotonic clock stands still: staleness stays 0, only the dead thread counts.
    deadline = time.monotonic() + 5
    while rig.listener.healthy() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (False, 0.0) == (rig.listener.healthy(), rig.listener.staleness())
    assert rig.listener.is_revoked(TENANT, "any"), "fail-closed: every session refused"
    rig.listener.close()


# -- a hung or recovering broker: every unanswered question is "unknown", never "current" --


def _log_lines(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def test_an_invalid_end_offset_is_unknown_never_caught_up() -> None:
    """A frozen broker's OFFSET_INVALID (-1001) answer must not pass for "read up to the end":
    that made a fail-closed service serve every session, revoked ones too."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    assert listener.healthy()
    rig.consumer.invalid = True
    rig.steps(int(BUDGET) + 2, seconds=1.0)
    assert (False, True) == (listener.healthy(), listener.is_revoked(TENANT, "any"))
    assert listener.stats.probes_failed > 0
    rig.consumer.invalid = False
    rig.steps(3, seconds=1.0)
    assert (True, False) == (listener.healthy(), listener.is_revoked(TENANT, "any"))


def test_an_invalid_end_offset_on_one_partition_is_unknown() -> None:
    """One partition without a valid answer leaves the whole set unknown."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    rig.consumer.invalid_partitions = {1}
    rig.steps(int(BUDGET) + 2, seconds=1.0)
    assert (False, True) == (listener.healthy(), listener.is_revoked(TENANT, "any"))


def test_a_per_partition_error_is_unknown_and_heals_when_the_leader_is_back() -> None:
    """A partition whose leader moved answers with an error: unknown until it answers again."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    rig.consumer.partition_errors = {0: KafkaError.UNKNOWN_TOPIC_OR_PART}
    rig.steps(int(BUDGET) + 2, seconds=1.0)
    assert not listener.healthy()
    rig.consumer.partition_errors = {}
    rig.steps(4, seconds=1.0)
    assert listener.healthy()


def test_a_fenced_leader_epoch_is_recovered_from_by_rebuilding_the_admin_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a thaw the admin client's metadata can stay stale and every probe answers
    FENCED_LEADER_EPOCH: the listener must rebuild it by itself rather than refuse every
    session for ever; and say so once per change, not once per try."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    built = rig.consumer.admins_built
    rig.consumer.fenced = True  # cleared only by a new admin client
    with caplog.at_level(logging.INFO, logger="sessionwarden.sdk.listener"):
        rig.steps(int(BUDGET) * 3 * 10, seconds=0.1)
    assert listener.healthy(), "recovered by itself"
    assert built + 1 == rig.consumer.admins_built
    assert 1 == listener.stats.admin_rebuilds
    assert (1, 1, 1) == (
        _log_lines(caplog, "end-offset probes failing"),
        _log_lines(caplog, "rebuilding its admin client"),
        _log_lines(caplog, "end-offset probes answer again"),
    )


def test_probe_retries_back_off_while_the_broker_refuses() -> None:
    """A broker that answers every probe with an error at once must not be asked in a loop."""
    rig = Rig(probe_interval_s=0.5)
    rig.start()
    rig.steps()
    rig.consumer.down = True
    asked = len(rig.consumer.offset_requests)
    rig.steps(300, seconds=0.1)  # 30 s
    probes = (len(rig.consumer.offset_requests) - asked) // 2  # each asks for low and end
    # Every 2 s at most once backed off, plus one at once with each new admin client.
    rebuilds = rig.listener.stats.admin_rebuilds
    assert probes <= 30 / 2.0 + rebuilds + 3, f"{probes} probes in 30 s, {rebuilds} rebuilds"
    assert rebuilds <= 30 / rig.listener.rebuild_after_s


def test_a_stuck_reader_is_rebuilt_from_its_positions_and_misses_nothing() -> None:
    """A consumer that stops fetching while the broker answers (stale leadership after a
    restart) is rebuilt, resuming where it was: a revocation issued meanwhile is read."""
    rig = Rig()
    listener = rig.start()
    rig.add(revocation("before"), 0)
    rig.steps()
    assert listener.healthy()
    rig.consumer.stuck = True  # cleared only by a new consumer
    rig.add(revocation("while-stuck"), 1)
    rig.steps(int(BUDGET) * 3, seconds=1.0)
    assert 2 == rig.consumer.consumers_built
    assert {0: 1, 1: OFFSET_BEGINNING} == {tp.partition: tp.offset for tp in rig.consumer.assigned}
    assert listener.is_revoked(TENANT, "while-stuck")
    assert listener.healthy()
    assert 1 == listener.stats.consumer_rebuilds


def test_a_long_hang_rebuilds_the_admin_client_only_after_it_failed_too() -> None:
    """Each new admin client gets its own probe's whole timeout before it is replaced: a
    rebuild that dropped the probe in flight would rebuild every few seconds for nothing."""
    rig = Rig(staleness_budget_s=5.0)
    listener = rig.start()
    rig.steps()
    rig.consumer.hanging = True
    rig.steps(600, seconds=0.1)  # 60 s
    failed, rebuilds = listener.stats.probes_failed, listener.stats.admin_rebuilds
    assert 1 <= rebuilds <= failed - 2, f"{rebuilds} rebuilds after {failed} failed probes"
    rig.consumer.hanging = False
    rig.steps(40, seconds=0.1)
    assert listener.healthy()


def test_a_revocation_on_an_identity_signal_revokes_like_any_other() -> None:
    """Reason ``signal`` (an identity provider or a Shared Signals transmitter ended the
    session) is decoded, kept with its reason, and handed to the callback."""
    rig = Rig()
    rig.add(revocation("s-1", reason="signal"))
    listener = rig.start()
    rig.steps()
    assert listener.is_revoked(TENANT, "s-1")
    assert "signal" == listener.revocation(TENANT, "s-1").reason  # type: ignore[union-attr]
    assert ["signal"] == [r.reason for r in rig.revocations]


def test_a_tenant_revocation_refuses_every_session_of_its_tenant_at_once() -> None:
    """A mass revocation bites from its first record, before its per-session records follow;
    other tenants are untouched."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    rig.add(tenant_revocation(partition=3), 0)

    rig.steps()

    assert [True, True, False] == [
        listener.is_revoked(t, s) for t, s in (("acme", "s-1"), ("acme", "new"), ("other", "s-1"))
    ]
    assert "operator" == listener.revocation("acme", "s-1").reason  # type: ignore[union-attr]


def test_the_hold_lifts_once_the_whole_topic_is_read_past_its_complete_copy() -> None:
    """The per-session records land on every partition: the complete copy alone proves
    nothing about the others, a freshness probe asked after it and reached does. Then only the
    revoked sessions stay refused, and a session that began after the command is served."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    rig.add(tenant_revocation(partition=3), 0)
    rig.steps()
    rig.add(revocation("s-1", reason="operator"), 1)
    rig.add(tenant_revocation(complete=True, partition=3), 0)

    rig.steps()
    held_at_once = listener.tenant_held("acme")
    rig.steps(25)

    assert (True, False) == (held_at_once, listener.tenant_held("acme"))
    assert [True, False] == [listener.is_revoked("acme", s) for s in ("s-1", "new")]


def test_a_complete_copy_read_alone_holds_nothing() -> None:
    """Compaction may leave only the complete copy: the bootstrap reads the per-session
    records before the listener is ready, so nothing needs holding."""
    rig = Rig()
    rig.add(tenant_revocation(complete=True), 0)
    rig.add(revocation("s-1", reason="operator"), 1)
    listener = rig.start()
    rig.steps()

    assert [True, False] == [listener.is_revoked("acme", s) for s in ("s-1", "new")]


def test_a_hold_is_forgotten_after_the_longest_session_lifetime() -> None:
    """A hold whose complete copy never came (the enforcer died for good) cannot outlive
    every session it could name."""
    rig = Rig()
    listener = rig.start()
    rig.steps()
    rig.add(tenant_revocation(partition=3, effective=0.0), 0)
    rig.steps()
    held = listener.tenant_held("acme")
    rig.wall.advance(LIFETIME)
    rig.steps()

    assert (True, False) == (held, listener.tenant_held("acme"))


def test_a_first_end_offset_probe_that_fails_is_asked_again_before_start_gives_up() -> None:
    """A topic created a moment ago may answer its first ListOffsets with an error (no leader
    yet): the listener asks again within its start timeout instead of failing at once."""
    rig = Rig()
    real = rig.consumer.list_offsets
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        rig.consumer.down = len(calls) == 1
        try:
            return real(*args, **kwargs)
        finally:
            rig.consumer.down = False

    rig.consumer.list_offsets = flaky  # type: ignore[method-assign]
    rig.add(revocation("s-1"))
    listener = rig.start()
    rig.steps()
    assert len(calls) >= 2
    assert listener.is_revoked(TENANT, "s-1")
