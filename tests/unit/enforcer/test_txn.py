"""Transactional error classification by librdkafka's contract."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from sessionwarden.enforcer.txn import (
    RETRY_BACKOFF_MAX_S,
    Action,
    Fence,
    FenceWindow,
    TxnFailure,
    call_transactional,
    classify,
    consumer_fatal,
    fence_action,
    fence_kind,
    resolve,
)

TIMEOUT = 10.0


def err(code: int, **flags: bool) -> KafkaError:
    return KafkaError(code, "x", **flags)


def test_retriable_errors_are_retried_while_the_budget_lasts() -> None:
    e = err(KafkaError._TIMED_OUT, retriable=True)
    assert Action.RETRY == classify(e, True, 1.0, TIMEOUT, 5.0)
    assert Action.RETRY == classify(e, False, 1.0, TIMEOUT, 5.0)


def test_a_commit_whose_outcome_is_unknown_is_never_undone() -> None:
    """A retriable commit timeout past the budget may still have committed: rebuild, no undo."""
    e = err(KafkaError._TIMED_OUT, retriable=True)
    assert Action.REBUILD == classify(e, True, 40.0, TIMEOUT, 0.0)
    assert Action.REBUILD == classify(err(KafkaError._STATE), True, 1.0, TIMEOUT, 5.0)


def test_before_commit_an_unusable_transaction_is_aborted() -> None:
    assert Action.ABORT == classify(err(KafkaError._STATE), False, 1.0, TIMEOUT, 5.0)
    e = err(KafkaError._TIMED_OUT, retriable=True)
    assert Action.ABORT == classify(e, False, 40.0, TIMEOUT, 0.0)


def test_requires_abort_aborts_even_on_commit() -> None:
    """librdkafka guarantees a transaction that requires abort did not commit."""
    e = err(KafkaError._MSG_TIMED_OUT, txn_requires_abort=True)
    assert Action.ABORT == classify(e, True, 1.0, TIMEOUT, 5.0)
    e = err(KafkaError._MSG_TIMED_OUT, txn_requires_abort=True, retriable=True)
    assert Action.ABORT == classify(e, True, 1.0, TIMEOUT, 5.0)


def test_fenced_inside_a_live_transaction_means_another_instance_took_over() -> None:
    e = err(KafkaError._FENCED, fatal=True)
    assert Action.EXIT == classify(e, True, 0.3, TIMEOUT, 5.0)
    assert Action.EXIT == classify(
        err(KafkaError.PRODUCER_FENCED, fatal=True), False, 2, TIMEOUT, 5
    )


def test_fenced_after_our_own_transaction_timed_out_rebuilds() -> None:
    """A broker outage longer than transaction.timeout.ms: the coordinator aborted it."""
    e = err(KafkaError._FENCED, fatal=True)
    assert Action.REBUILD == classify(e, False, 31.0, TIMEOUT, 5.0)
    assert Action.REBUILD == classify(e, False, None, TIMEOUT, 5.0)  # age unknown: old


def test_only_a_fence_sooner_than_the_timeout_after_the_last_begin_is_a_takeover() -> None:
    """The coordinator aborts a transaction only once it is older than the timeout: a fence
    sooner than that after our last begin_transaction (or init_transactions) is another
    process's, open transaction or not; later, it is our own timed-out transaction's."""
    e = err(KafkaError.PRODUCER_FENCED, fatal=True)
    assert Fence.TAKEN_OVER is fence_kind(e, TIMEOUT - 0.1, TIMEOUT)
    assert Fence.TXN_TIMED_OUT is fence_kind(e, TIMEOUT + 0.1, TIMEOUT)
    assert Fence.TXN_TIMED_OUT is fence_kind(e, None, TIMEOUT)


def test_only_a_static_member_fence_is_for_fence_window_to_count() -> None:
    assert Fence.MEMBER is fence_kind(err(KafkaError._FATAL), 0.1, TIMEOUT, consumer=True)
    assert Fence.MEMBER is fence_kind(err(KafkaError.FENCED_INSTANCE_ID, fatal=True), 99, TIMEOUT)
    assert fence_kind(err(KafkaError._TIMED_OUT, retriable=True), 0.1, TIMEOUT) is None


def test_other_fatal_errors_rebuild() -> None:
    e = err(KafkaError.INVALID_TXN_STATE, fatal=True)
    assert Action.REBUILD == classify(e, True, 0.3, TIMEOUT, 5.0)


def test_a_fatal_consumer_error_is_recognised_as_librdkafka_raises_it() -> None:
    """Code _FATAL with fatal() unset (a static member fenced by another)."""
    assert consumer_fatal(err(KafkaError._FATAL))
    assert consumer_fatal(err(KafkaError.FENCED_INSTANCE_ID, fatal=True))
    assert not consumer_fatal(err(KafkaError.UNKNOWN_MEMBER_ID))
    assert not consumer_fatal(err(KafkaError._PARTITION_EOF))


def test_fenced_once_rebuilds_fenced_repeatedly_exits() -> None:
    """Once: our own rejoin after an outage. Three times in ten minutes: a second process
    with our instance id, fencing us back after every rebuild."""
    window = FenceWindow(limit=3, window_s=600)
    assert not window.fenced(0.0)
    assert not window.fenced(700.0)  # the first has aged out
    assert not window.fenced(800.0)
    assert window.fenced(900.0)


def failing(*errors: KafkaError) -> tuple[Callable[[float], None], list[float]]:
    """A transactional call that raises ``errors`` in turn, then succeeds."""
    calls: list[float] = []

    def call(timeout: float) -> None:
        calls.append(timeout)
        if len(calls) <= len(errors):
            raise KafkaException(errors[len(calls) - 1])

    return call, calls


def test_a_retriable_commit_is_called_again_until_it_lands() -> None:
    e = err(KafkaError._TIMED_OUT, retriable=True)
    call, calls = failing(e, e)
    call_transactional("commit_transaction", call, True, 0.0, TIMEOUT, 30.0)
    assert [TIMEOUT] * 3 == calls


def test_a_retriable_commit_past_its_budget_is_an_unknown_outcome() -> None:
    e = err(KafkaError._TIMED_OUT, retriable=True)
    call, calls = failing(e, e, e)
    with pytest.raises(TxnFailure) as failure:
        call_transactional("commit_transaction", call, True, None, TIMEOUT, 0.0)
    assert Action.REBUILD is failure.value.action
    assert 1 == len(calls)


def test_an_abortable_error_is_not_retried() -> None:
    call, calls = failing(err(KafkaError._MSG_TIMED_OUT, txn_requires_abort=True))
    with pytest.raises(TxnFailure) as failure:
        call_transactional("send_offsets_to_transaction", call, False, 0.0, TIMEOUT, 30.0)
    assert Action.ABORT is failure.value.action
    assert "send_offsets_to_transaction" == failure.value.call
    assert 1 == len(calls)


PRODUCER_FENCES = (
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
)


@pytest.mark.parametrize("code", PRODUCER_FENCES)
@pytest.mark.parametrize("fatal", [True, False])
def test_every_producer_fence_in_a_live_transaction_exits(code: int, fatal: bool) -> None:
    """Whatever the code and flag, a fence within the transaction timeout is another process
    with our transactional id: running on (or rebuilding) would fence it back."""
    e = err(code, fatal=fatal)
    assert Action.EXIT == classify(e, True, 0.3, TIMEOUT, 5.0)
    assert Action.EXIT == classify(e, False, 0.3, TIMEOUT, 5.0)
    assert Action.EXIT == fence_action(e, 0.3, TIMEOUT)


def test_a_bare_fatal_from_produce_is_resolved_to_the_producers_fence() -> None:
    """produce() on a fenced producer says only _FATAL; the producer's own fatal error says
    it was fenced, so the fence exits instead of rebuilding (which fenced the other process
    back, and it us, in turn)."""
    fenced = err(KafkaError._FENCED, fatal=True)
    resolved = resolve(err(KafkaError._FATAL), lambda: fenced)
    assert fenced is resolved
    assert Action.EXIT == fence_action(resolved, 0.3, TIMEOUT)


def test_a_bare_fatal_the_client_cannot_explain_rebuilds() -> None:
    unexplained = resolve(err(KafkaError._FATAL), lambda: None)
    assert KafkaError._FATAL == unexplained.code()
    assert fence_action(unexplained, 0.3, TIMEOUT) is None
    assert Action.REBUILD == classify(unexplained, False, 0.3, TIMEOUT, 5.0)


def test_an_explained_error_is_not_queried_again() -> None:
    e = err(KafkaError._TIMED_OUT, retriable=True)
    assert e is resolve(e, lambda: pytest.fail("queried the client"))


def test_a_fenced_static_member_is_counted_not_exited_at_once() -> None:
    """A consumer fence can be our own rejoin after an outage: FenceWindow decides."""
    assert Action.REBUILD == fence_action(err(KafkaError.FENCED_INSTANCE_ID, fatal=True), 0.3, 10)
    assert Action.REBUILD == fence_action(err(KafkaError._FATAL), None, TIMEOUT, consumer=True)
    assert fence_action(err(KafkaError._FATAL), None, TIMEOUT) is None
    assert fence_action(err(KafkaError._TIMED_OUT, retriable=True), 0.3, TIMEOUT) is None


def test_a_conflicting_call_is_never_retried() -> None:
    """_CONFLICT (another call, e.g. a fenced commit, still in progress) is marked retriable,
    but retrying cannot end it: retried hot it spun a core and wrote 400,000 log lines."""
    e = err(KafkaError._CONFLICT, retriable=True)
    assert Action.REBUILD == classify(e, False, 0.3, TIMEOUT, 30.0)
    assert Action.REBUILD == classify(e, True, 0.3, TIMEOUT, 30.0)
    call, calls = failing(e, e, e)
    with pytest.raises(TxnFailure) as failure:
        call_transactional("abort_transaction", call, False, 0.0, TIMEOUT, 30.0)
    assert Action.REBUILD is failure.value.action
    assert 1 == len(calls)


class FakeTime:
    """A monotonic clock that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_retries_back_off_exponentially_and_log_two_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    e = err(KafkaError._TIMED_OUT, retriable=True)
    call, calls = failing(*[e] * 40)
    fake = FakeTime()
    with caplog.at_level(logging.WARNING, logger="sessionwarden.enforcer.txn"):
        call_transactional(
            "commit_transaction", call, True, None, TIMEOUT, 60.0, fake.clock, fake.sleep
        )
    assert 41 == len(calls)
    assert [0.05, 0.1, 0.2, 0.4, 0.8] == pytest.approx(fake.sleeps[:5])
    assert {RETRY_BACKOFF_MAX_S} == set(fake.sleeps[5:])
    assert 2 == len(caplog.records)  # the first retry, then one summary
    assert 40 == caplog.records[1].__dict__["retries"]


def test_retry_pauses_end_with_the_budget() -> None:
    e = err(KafkaError._TIMED_OUT, retriable=True)
    call, calls = failing(*[e] * 1000)
    fake = FakeTime()
    with pytest.raises(TxnFailure) as failure:
        call_transactional(
            "commit_transaction", call, True, None, TIMEOUT, 3.0, fake.clock, fake.sleep
        )
    assert Action.REBUILD is failure.value.action
    assert 3.0 == pytest.approx(sum(fake.sleeps))
    assert len(calls) < 15
