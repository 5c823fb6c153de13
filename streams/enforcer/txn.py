"""What to do about a transactional error, by librdkafka's contract. Pure: no I/O.

- ``fatal()``: the producer is unusable. If it was fenced while its transaction was younger
  than ``transaction.timeout.ms``, another instance took over our transactional id: exit
  non-zero (running on would fence it in turn). Otherwise the coordinator aborted our
  transaction itself (a broker outage outlived the timeout) or lost its state: rebuild.
- ``txn_requires_abort()``: the transaction did not commit; abort it, undo, rewind.
- ``retriable()``: call the same method again (commit may still land; never undo it).
- anything else before commit was called: the transaction cannot have committed; abort.
  After commit was called: the outcome is unknown; memory is dropped and rebuilt from the
  committed changelog (never undone, which could lose a committed login).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from streams.logsetup import error_fields

log = logging.getLogger(__name__)


class Action(Enum):
    RETRY = "retry"
    ABORT = "abort"
    REBUILD = "rebuild"  # drop clients and memory, restore from the committed log
    EXIT = "exit"  # fenced by another instance: stop for the supervisor


CONSUME = "consume"  # the call named by a consumer's fatal error
FENCED = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.FENCED_INSTANCE_ID,
    }
)


def classify(
    err: KafkaError,
    committing: bool,
    txn_age_s: float | None,
    txn_timeout_s: float,
    retry_left_s: float,
) -> Action:
    """The action for ``err`` raised by a transactional call.

    ``committing``: commit_transaction was called for the open transaction (its outcome may
    be "committed"). ``txn_age_s``: how long the open transaction has been open (None if
    none). ``retry_left_s``: what remains of the retry budget of this call.
    """
    if err.fatal():
        if err.code() in FENCED and txn_age_s is not None and txn_age_s < txn_timeout_s:
            return Action.EXIT
        return Action.REBUILD
    if err.txn_requires_abort():
        return Action.ABORT
    if err.retriable() and retry_left_s > 0:
        return Action.RETRY
    return Action.REBUILD if committing else Action.ABORT


def consumer_fatal(err: KafkaError) -> bool:
    """librdkafka reports a fatal consumer error as ``_FATAL`` (its fatal() flag unset). Its
    only one is a static member fenced by another consumer with the same group.instance.id.
    That is either a second process with our instance id, or our own rejoin after a broker
    outage (seen in the outage test): FenceWindow tells them apart."""
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


class FenceWindow:
    """Fenced ``limit`` times within ``window_s``: another process has our id (each rebuild of
    ours fences it, and it fences us back), so exit. Once after an outage: rebuild."""

    def __init__(self, limit: int = 3, window_s: float = 600.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: list[float] = []

    def fenced(self, now: float) -> bool:
        """Record a fencing at ``now``; True if it is time to exit."""
        self._times = [t for t in self._times if t > now - self.window_s] + [now]
        return len(self._times) >= self.limit


def describe(action: Action, err: KafkaError, transactional_id: str) -> str:
    """The log line for an action, plain enough for whoever is paged."""
    if action is Action.EXIT:
        return (
            f"fenced: another enforcer took over transactional id {transactional_id!r} "
            f"({err.name()}); exiting. Give every replica its own SESSIONWARDEN_INSTANCE_ID."
        )
    if action is Action.REBUILD:
        return (
            f"transaction state lost ({err.name()}: {err.str()}); rebuilding the Kafka clients "
            "and restoring state from the committed changelog"
        )
    if action is Action.ABORT:
        return f"transaction failed ({err.name()}: {err.str()}); aborting the batch"
    return f"retriable transaction error ({err.name()}: {err.str()}); retrying"


def call_transactional(
    name: str,
    fn: Callable[[float], Any],
    committing: bool,
    txn_started: float | None,
    txn_timeout_s: float,
    retry_s: float,
) -> None:
    """Call a transactional method (given its timeout), retrying retriable errors for
    ``retry_s``; anything else raises TxnFailure with the action ``classify`` chose.
    ``txn_started``: monotonic time the open transaction began, None if none is open."""
    give_up = time.monotonic() + retry_s
    while True:
        try:
            fn(txn_timeout_s)
            return
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            age = None if txn_started is None else time.monotonic() - txn_started
            action = classify(err, committing, age, txn_timeout_s, give_up - time.monotonic())
            if action is not Action.RETRY:
                raise TxnFailure(action, err, name) from exc
            log.warning(describe(action, err, ""), extra={"call": name, **error_fields(err)})


class TxnFailure(Exception):
    """A transactional call failed in a way retrying does not fix; ``action`` says what next."""

    def __init__(self, action: Action, err: KafkaError, call: str) -> None:
        super().__init__(f"{call}: {err.name()}: {err.str()}")
        self.action = action
        self.err = err
        self.call = call


class EnforcerExit(Exception):
    """The enforcer must stop and be restarted by its supervisor; ``code`` is the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit code {code}")
        self.code = code


def cause_of(exc: BaseException) -> str:
    """A bounded label for an abort or a recovery: the call and the Kafka error's name."""
    if isinstance(exc, TxnFailure):
        return f"{exc.call}: {exc.err.name()}"
    return str(error_fields(exc)["error"])
