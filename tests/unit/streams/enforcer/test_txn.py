"""Transactional error classification by librdkafka's contract."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.enforcer.txn import (
    Action,
    FenceWindow,
    TxnFailure,
    call_transactional,
    classify,
    consumer_fatal,
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
    assert Action.REBUILD == classify(e, False, None, TIMEOUT, 5.0)  # between transactions


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
