"""The enforcer loop's lifecycle on fake clients: how it closes, leaves its group and decides
between rebuilding and exiting when fenced."""

from __future__ import annotations

import time
import weakref
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.loop import EXIT_FENCED, EXIT_UNRECOVERABLE, EnforcerLoop, KafkaClients
from sessionwarden.enforcer.txn import CONSUME, Action, EnforcerExit, TxnFailure
from tests.unit.enforcer.factories import policy
from tests.unit.enforcer.fakes import FakeCommandsConsumer

TIMEOUT_MS = 10_000
TIMEOUT_S = TIMEOUT_MS / 1000


class FakeProducer:
    """The transactional producer's calls the lifecycle makes, recorded in ``calls``."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.abort_error: KafkaError | None = None
        self.init_error: KafkaError | None = None
        self.fatal: KafkaError | None = None  # raised by poll, as confluent-kafka does

    def init_transactions(self, timeout: float = -1) -> None:
        self.calls.append("producer.init_transactions")
        if self.init_error is not None:
            raise KafkaException(self.init_error)

    def abort_transaction(self, timeout: float = -1) -> None:
        self.calls.append("producer.abort_transaction")
        if self.abort_error is not None:
            raise KafkaException(self.abort_error)

    def poll(self, timeout: float = -1) -> int:
        self.calls.append("producer.poll")
        if self.fatal is not None:
            raise KafkaException(self.fatal)
        return 0

    def purge(self, *args: Any) -> None:
        self.calls.append("producer.purge")

    def flush(self, timeout: float = -1) -> int:
        self.calls.append(f"producer.flush({timeout})")
        return 0


class FakeConsumer:
    """A static group member. After ``unsubscribe`` the next consume serves the revocation
    (the application's on_revoke runs there) and empties the assignment; as librdkafka does,
    the LeaveGroup is sent (and the member id cleared) only once the unassign is done, here
    ``leave_after`` consume calls later."""

    def __init__(self, calls: list[str], leave_after: int = 2) -> None:
        self.calls = calls
        self.member: str | None = "enforcer-0-abc"
        self.assigned = [TopicPartition("auth.events", p) for p in (0, 1, 2)]
        self.leave_after = leave_after
        self.unsubscribed = False
        self.consume_error: BaseException | None = None

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.calls.append("consumer.subscribe")

    def list_topics(self, topic: str, timeout: float = -1) -> Any:
        return SimpleNamespace(topics={})

    def unsubscribe(self) -> None:
        self.calls.append("consumer.unsubscribe")
        self.unsubscribed = True

    def assignment(self) -> list[TopicPartition]:
        return list(self.assigned)

    def memberid(self) -> str | None:
        return self.member

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        self.calls.append("consumer.consume")
        if self.consume_error is not None:
            raise self.consume_error
        if self.unsubscribed and self.assigned:
            self.assigned = []  # on_revoke ran
        elif self.unsubscribed and self.member is not None:
            self.leave_after -= 1
            if self.leave_after <= 0:
                self.member = None
                self.calls.append("consumer.left")
        return []

    def close(self) -> None:
        self.calls.append(f"consumer.close(member={self.member})")


class FakeClients(KafkaClients):
    """Hands out fakes; a rebuild gets fresh ones, all recording into one list."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.producers: list[FakeProducer] = []
        self.consumers: list[FakeConsumer] = []

    def consumer(self, config: dict[str, Any]) -> Any:
        self.consumers.append(FakeConsumer(self.calls))
        return self.consumers[-1]

    def commands_consumer(self, config: dict[str, Any]) -> Any:
        return FakeCommandsConsumer()

    def producer(self, config: dict[str, Any]) -> Any:
        self.producers.append(FakeProducer(self.calls))
        return self.producers[-1]

    def admin(self, config: dict[str, Any]) -> Any:
        return SimpleNamespace()


def make_loop(**overrides: Any) -> tuple[EnforcerLoop, FakeClients]:
    settings = Settings(
        bootstrap_servers="127.0.0.1:1",  # the restore consumer is real but never used
        metrics_enabled=False,
        transaction_timeout_ms=TIMEOUT_MS,
        txn_retry_timeout_s=1.0,
        **overrides,
    )
    clients = FakeClients()
    return EnforcerLoop(settings, policy(), clients=clients), clients


def fenced(code: int = KafkaError._FENCED) -> KafkaError:
    return KafkaError(code, "fenced", fatal=True)


def in_transaction(loop: EnforcerLoop, age_s: float) -> None:
    loop._batch.open = True
    loop._txn.started = time.monotonic() - age_s


def index(calls: list[str], prefix: str) -> int:
    return next(i for i, c in enumerate(calls) if c.startswith(prefix))


# -- closing ----------------------------------------------------------------------------------


def test_a_planned_stop_aborts_then_leaves_then_closes_and_flushes() -> None:
    loop, clients = make_loop()
    in_transaction(loop, 0.5)
    loop.close(leave=True)
    calls = clients.calls
    assert (
        index(calls, "producer.abort_transaction")
        < index(calls, "consumer.unsubscribe")
        < index(calls, "consumer.left")
        < index(calls, "consumer.close")
        < index(calls, "producer.flush(10)")
    ), calls


def test_a_planned_stop_waits_until_the_leave_group_is_sent_not_only_the_unassign() -> None:
    """librdkafka empties the assignment first and sends LeaveGroup (clearing the member id)
    only once the revocation is served; closing before that leaves the partitions to wait
    for the session timeout."""
    loop, clients = make_loop()
    loop.close(leave=True)
    assert "consumer.close(member=None)" in clients.calls, clients.calls


def test_a_leave_that_does_not_happen_in_time_is_not_reported_as_left(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sessionwarden.enforcer.loop.LEAVE_GROUP_S", 0.2)
    loop, clients = make_loop()
    clients.consumers[-1].leave_after = 10**9
    with caplog.at_level("INFO", logger="sessionwarden.enforcer.loop"):
        loop.close(leave=True)
    messages = [r.getMessage() for r in caplog.records]
    assert "left the consumer group" not in messages
    assert any("did not leave the consumer group" in m for m in messages), messages


def test_the_leave_log_counts_the_partitions_handed_over(caplog: pytest.LogCaptureFixture) -> None:
    loop, _ = make_loop()
    with caplog.at_level("INFO", logger="sessionwarden.enforcer.loop"):
        loop.close(leave=True)
    left = [r for r in caplog.records if r.getMessage() == "left the consumer group"]
    assert 1 == len(left)
    assert 3 == left[0].__dict__["partitions_handed_over"]


def test_a_fenced_enforcer_neither_aborts_nor_leaves_nor_flushes() -> None:
    loop, clients = make_loop()
    in_transaction(loop, 0.5)
    loop._fenced = True
    loop.close(leave=True)
    calls = clients.calls
    assert "producer.abort_transaction" not in calls
    assert "consumer.unsubscribe" not in calls
    assert not any(c.startswith("producer.flush") for c in calls)
    assert "producer.purge" in calls


def test_a_failed_abort_means_no_leave() -> None:
    """The open transaction's partitions must not go to another member before it ended."""
    loop, clients = make_loop()
    in_transaction(loop, 0.5)
    clients.producers[-1].abort_error = KafkaError(KafkaError._STATE, "bad state")
    loop.close(leave=True)
    assert "consumer.unsubscribe" not in clients.calls
    assert "producer.flush(10)" in clients.calls


def test_a_fence_found_by_the_shutdown_abort_purges_skips_the_flush_and_exits_3() -> None:
    loop, clients = make_loop()
    in_transaction(loop, 0.5)
    clients.producers[-1].abort_error = fenced(KafkaError.PRODUCER_FENCED)
    loop.close(leave=True)
    assert loop._fenced
    assert "producer.purge" in clients.calls
    assert not any(c.startswith("producer.flush") for c in clients.calls)
    assert "consumer.unsubscribe" not in clients.calls

    loop, clients = make_loop()
    loop.stop()  # a planned stop, with a batch open
    in_transaction(loop, 0.5)
    clients.producers[-1].abort_error = fenced(KafkaError.PRODUCER_FENCED)
    with pytest.raises(EnforcerExit) as stopped:
        loop.run()
    assert EXIT_FENCED == stopped.value.code


def test_a_producer_fenced_by_its_own_timed_out_transaction_is_purged_not_flushed() -> None:
    """Not another process (a planned stop still exits 0), but a fenced producer can deliver
    nothing: no 10 s flush."""
    loop, clients = make_loop()
    in_transaction(loop, TIMEOUT_S + 1)
    clients.producers[-1].abort_error = fenced(KafkaError.PRODUCER_FENCED)
    loop.close(leave=True)
    assert not loop._fenced
    assert "producer.purge" in clients.calls
    assert not any(c.startswith("producer.flush") for c in clients.calls)
    assert "consumer.unsubscribe" not in clients.calls


def test_close_never_raises_when_the_revocation_callback_fails() -> None:
    """A revoked partition's checkpoint is written by on_revoke, inside consume(); a full disk
    there must not turn a clean stop into a traceback, and the clients are still closed."""
    loop, clients = make_loop()
    clients.consumers[-1].consume_error = OSError(28, "No space left on device")
    loop.close(leave=True)
    assert any(c.startswith("consumer.close") for c in clients.calls)
    assert "producer.flush(10)" in clients.calls


# -- fences: exit or rebuild ------------------------------------------------------------------


def test_our_own_timed_out_transactions_never_exit_as_fenced() -> None:
    """A producer fenced because the coordinator aborted our transaction after
    transaction.timeout.ms (slow input, a slow disk, a broker stall) is no other process:
    three of them in ten minutes must not exit 3."""
    loop, _ = make_loop()
    for _ in range(5):
        in_transaction(loop, TIMEOUT_S + 1)
        loop._exit_if_fenced(TxnFailure(Action.REBUILD, fenced(), "commit_transaction"))
    assert not loop._fenced


def test_timed_out_transactions_rebuild_until_max_recoveries_then_exit_4() -> None:
    loop, _ = make_loop(max_recoveries=2)
    for _ in range(2):
        in_transaction(loop, TIMEOUT_S + 1)
        loop._rebuild(TxnFailure(Action.REBUILD, fenced(), "commit_transaction"))
    in_transaction(loop, TIMEOUT_S + 1)
    with pytest.raises(EnforcerExit) as stopped:
        loop._rebuild(TxnFailure(Action.REBUILD, fenced(), "commit_transaction"))
    assert EXIT_UNRECOVERABLE == stopped.value.code


def test_a_static_member_fenced_three_times_exits_3() -> None:
    loop, _ = make_loop()
    fence = TxnFailure(Action.REBUILD, KafkaError(KafkaError._FATAL, "fenced"), CONSUME)
    loop._exit_if_fenced(fence)
    loop._exit_if_fenced(fence)
    with pytest.raises(EnforcerExit) as stopped:
        loop._exit_if_fenced(fence)
    assert EXIT_FENCED == stopped.value.code


def test_a_fence_raised_by_the_poll_after_a_commit_exits_at_once() -> None:
    """No transaction is open then, but one began a moment ago: the coordinator cannot have
    timed it out, so another process took our transactional id."""
    loop, clients = make_loop()
    in_transaction(loop, 0.2)
    loop._batch.open = False  # committed
    clients.producers[-1].fatal = fenced()
    with pytest.raises(EnforcerExit) as stopped:
        loop._exit_if_fenced(KafkaException(fenced()))
    assert EXIT_FENCED == stopped.value.code


def test_a_fence_raised_by_produce_as_a_bare_fatal_between_transactions_exits() -> None:
    loop, clients = make_loop()
    in_transaction(loop, 0.2)
    loop._batch.open = False
    clients.producers[-1].fatal = fenced(KafkaError.PRODUCER_FENCED)
    with pytest.raises(EnforcerExit):
        loop._exit_if_fenced(KafkaException(KafkaError(KafkaError._FATAL, "fatal")))


def test_a_fence_seen_by_init_transactions_exits() -> None:
    """Another process initialised our transactional id while we did: running on (or
    rebuilding, whose init_transactions fences it back) would ping-pong."""
    loop, clients = make_loop()
    clients.producers[-1].init_error = fenced(KafkaError.PRODUCER_FENCED)
    with pytest.raises(EnforcerExit) as stopped:
        loop._start_or_recover()
    assert EXIT_FENCED == stopped.value.code


def test_a_bare_fatal_from_a_consumer_call_is_counted_as_a_member_fence() -> None:
    """The producer is healthy (its poll raises nothing), so the refused call was the
    consumer's: a static member fenced, which FenceWindow counts."""
    loop, _ = make_loop()
    fatal = KafkaException(KafkaError(KafkaError._FATAL, "fatal"))
    loop._exit_if_fenced(fatal)
    loop._exit_if_fenced(fatal)
    with pytest.raises(EnforcerExit):
        loop._exit_if_fenced(fatal)


def test_a_fence_seen_by_begin_transaction_is_a_takeover() -> None:
    """Between batches no transaction is open, but the last one began a moment ago."""
    loop, _ = make_loop()
    in_transaction(loop, 0.2)
    loop._batch.open = False  # the previous batch committed

    def begin(_: float) -> None:
        raise KafkaException(fenced(KafkaError.PRODUCER_FENCED))

    with pytest.raises(TxnFailure) as failure:
        loop._call("begin_transaction", begin)
    assert Action.EXIT is failure.value.action


# -- rebuilding: the old producer is gone before the new one starts ---------------------------


class TrackingClients(FakeClients):
    """Holds its producers only weakly, and records how many earlier producers are still alive
    when a new one is made and when it calls init_transactions: librdkafka's producer has no
    close(), it stops only when destroyed, and one still alive with our transactional id races
    the new one for it (it retries its own epoch bump after the broker answers again)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[weakref.ref[FakeProducer]] = []
        self.alive_when_made: list[int] = []
        self.alive_at_init: list[int] = []

    def older_alive(self, than: FakeProducer | None = None) -> int:
        return sum(1 for ref in self.made if ref() is not None and ref() is not than)

    def producer(self, config: dict[str, Any]) -> Any:
        self.alive_when_made.append(self.older_alive())
        made = TrackedProducer(self)
        self.made.append(weakref.ref(made))
        return made


class TrackedProducer(FakeProducer):
    def __init__(self, clients: TrackingClients) -> None:
        super().__init__(clients.calls)
        self.clients = clients

    def init_transactions(self, timeout: float = -1) -> None:
        self.clients.alive_at_init.append(self.clients.older_alive(self))
        super().init_transactions(timeout)


def test_a_rebuild_destroys_the_old_producer_before_the_new_one_is_made() -> None:
    """The failed call's traceback holds the old producer (the bound method it called); so do
    the objects built around it. All of it must be let go before the new producer exists."""
    settings = Settings(
        bootstrap_servers="127.0.0.1:1",
        metrics_enabled=False,
        transaction_timeout_ms=TIMEOUT_MS,
        txn_retry_timeout_s=1.0,
    )
    clients = TrackingClients()
    loop = EnforcerLoop(settings, policy(), clients=clients)
    loop.start()
    first = clients.made[0]()
    assert first is not None
    first.abort_error = KafkaError(KafkaError._TIMED_OUT, "timed out")  # not retriable
    in_transaction(loop, 1.0)
    del first
    try:
        loop._abort("test")  # as run() does: the failure reaches _recover from an except clause
    except TxnFailure as exc:
        loop._recover(exc)
    assert ([0, 0], [0, 0]) == (clients.alive_when_made, clients.alive_at_init)
    loop.close()
