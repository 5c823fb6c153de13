"""Client calls that do not return: librdkafka's send_offsets_to_transaction can wait past the
timeout it was given, for good, once the group coordinator it was sending to died (librdkafka
issues 5456 and 5511). The loop gives such a call up after twice the transaction timeout and
rebuilds its clients beside it, or exits 4 if the stuck call could still bump the epoch."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from sessionwarden.enforcer.loop import EXIT_UNRECOVERABLE, EnforcerLoop
from sessionwarden.enforcer.txn import (
    Action,
    CallStuck,
    EnforcerExit,
    StuckFailure,
    TxnFailure,
    call_transactional,
    call_within,
    cause_of,
    rebuild_beside,
    stuck_after,
)
from tests.unit.enforcer.test_lifecycle import (
    TIMEOUT_S,
    FakeClients,
    FakeProducer,
    in_transaction,
    make_loop,
)

STUCK_FACTOR = 0.05  # twice the timeout would be 20 s here; 0.5 s keeps the tests short


class HangingProducer(FakeProducer):
    """``hang`` names the call that never returns until ``release`` is set."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__(calls)
        self.hang = ""
        self.release = threading.Event()

    def _maybe_hang(self, name: str) -> None:
        if self.hang == name:
            self.release.wait()

    def init_transactions(self, timeout: float = -1) -> None:
        self._maybe_hang("init_transactions")
        super().init_transactions(timeout)

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float = -1) -> None:
        self.calls.append("producer.send_offsets_to_transaction")
        self._maybe_hang("send_offsets_to_transaction")


class HangingClients(FakeClients):
    def producer(self, config: dict[str, Any]) -> Any:
        self.producers.append(HangingProducer(self.calls))
        return self.producers[-1]


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[HangingClients]:
    monkeypatch.setattr("sessionwarden.enforcer.txn.STUCK_FACTOR", STUCK_FACTOR)
    made = HangingClients()
    monkeypatch.setattr("tests.unit.enforcer.test_lifecycle.FakeClients", lambda: made)
    yield made
    for producer in made.producers:  # lets the abandoned calls' threads end
        assert isinstance(producer, HangingProducer)
        producer.release.set()


def send_offsets(loop: EnforcerLoop) -> Any:
    """The batch's send_offsets_to_transaction as _batch makes it, in a thread of its own;
    returns what it raised, or fails the test if it is still in the call after 5 s."""
    producer = loop._producer
    outcome: list[Any] = []

    def call() -> None:
        try:
            loop._call(
                "send_offsets_to_transaction",
                lambda t: producer.send_offsets_to_transaction([], None, t),
            )
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(5.0)
    assert not worker.is_alive(), "the loop is still waiting in send_offsets_to_transaction"
    return outcome[0]


# -- the bound --------------------------------------------------------------------------------


def test_a_call_is_stuck_after_twice_its_timeout() -> None:
    assert 10.0 == stuck_after(5.0)


def test_call_within_returns_the_result_or_raises_what_the_call_raised() -> None:
    assert 7 == call_within("x", lambda: 7, 1.0)
    boom = KafkaException(KafkaError(KafkaError._STATE, "bad state"))

    def fails() -> None:
        raise boom

    with pytest.raises(KafkaException) as raised:
        call_within("x", fails, 1.0)
    assert raised.value is boom


def test_call_within_gives_up_on_a_call_that_does_not_return() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(CallStuck) as stuck:
        call_within("send_offsets_to_transaction", release.wait, 0.2)
    release.set()
    assert time.monotonic() - started < 2.0
    assert "send_offsets_to_transaction" == stuck.value.call


def test_a_stuck_transactional_call_rebuilds_and_says_so() -> None:
    release = threading.Event()
    with pytest.raises(StuckFailure) as failure:
        call_transactional(
            "send_offsets_to_transaction", lambda _: release.wait(), False, None, 10.0, 30.0,
            stuck_s=0.2,
        )  # fmt: skip
    release.set()
    assert Action.REBUILD is failure.value.action
    assert "send_offsets_to_transaction: stuck" == cause_of(failure.value)


def test_only_calls_that_cannot_bump_the_epoch_are_rebuilt_beside() -> None:
    assert rebuild_beside("send_offsets_to_transaction")
    assert rebuild_beside("commit_transaction")
    assert rebuild_beside("begin_transaction")
    assert not rebuild_beside("init_transactions")
    assert not rebuild_beside("abort_transaction")


# -- the loop ---------------------------------------------------------------------------------


def test_a_send_offsets_that_never_returns_ends_in_a_rebuild_not_a_hang(
    clients: HangingClients,
) -> None:
    loop, _ = make_loop()
    loop.start()
    stuck = clients.producers[-1]
    assert isinstance(stuck, HangingProducer)
    stuck.hang = "send_offsets_to_transaction"
    in_transaction(loop, 0.1)
    started = time.monotonic()
    failure = send_offsets(loop)
    assert isinstance(failure, StuckFailure), failure
    assert time.monotonic() - started < STUCK_FACTOR * TIMEOUT_S + 2.0
    loop._recover(failure)  # as run() does
    assert 2 == len(clients.producers)
    assert 2 == clients.calls.count("producer.init_transactions")
    assert (1, 1) == (loop.stats.stuck_calls, loop.stats.recoveries)
    loop.close()


def test_a_producer_with_a_stuck_call_is_neither_aborted_nor_flushed_on_close(
    clients: HangingClients,
) -> None:
    """It would only wait again (librdkafka refuses a second transactional call while one is in
    progress, as retriable); the open batch's changes never committed, so no leave either."""
    loop, _ = make_loop()
    loop.start()
    producer = clients.producers[-1]
    assert isinstance(producer, HangingProducer)
    producer.hang = "send_offsets_to_transaction"
    in_transaction(loop, 0.1)
    assert isinstance(send_offsets(loop), StuckFailure)
    loop.close(leave=True)
    calls = clients.calls
    assert "producer.abort_transaction" not in calls
    assert not any(c.startswith("producer.flush") for c in calls)
    assert "consumer.unsubscribe" not in calls
    assert "producer.purge" in calls


def test_an_init_transactions_that_never_returns_exits_4_without_a_second_producer(
    clients: HangingClients,
) -> None:
    """Left running beside a new producer, it could bump our epoch once it returns and fence
    the new one: only a restart ends it."""
    loop, _ = make_loop()
    producer = clients.producers[-1]
    assert isinstance(producer, HangingProducer)
    producer.hang = "init_transactions"
    with pytest.raises(EnforcerExit) as stopped:
        loop._start_or_recover()
    assert EXIT_UNRECOVERABLE == stopped.value.code
    assert 1 == len(clients.producers)
    assert 1 == loop.stats.stuck_calls


def test_errors_a_call_raises_in_its_thread_are_classified_as_before(
    clients: HangingClients,
) -> None:
    loop, _ = make_loop()
    loop._txn.started = time.monotonic()  # initialised a moment ago: a fence is a takeover
    clients.producers[-1].init_error = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    with pytest.raises(TxnFailure) as failure:
        loop._call("init_transactions", loop._producer.init_transactions)
    assert Action.EXIT is failure.value.action
    assert not loop._txn.stuck
