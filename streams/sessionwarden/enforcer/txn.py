"""What to do about a transactional error, by librdkafka's contract. Pure: no I/O.

- fenced (whichever call shows it, fatal or not; ``Fence``): if our producer began its last
  transaction (or was initialised) less than ``transaction.timeout.ms`` ago, the coordinator
  cannot have timed it out, so another instance took over our transactional id: exit
  non-zero at once (running on would fence it in turn; a fenced producer cannot even abort).
  Otherwise the coordinator aborted our own transaction (slow input, a slow disk, a broker
  stall outlived the timeout): rebuild, under ``max_recoveries`` like any lost transaction.
  A static member fenced (the consumer's): rebuild, and FenceWindow exits if fences keep
  coming.
- ``fatal()`` otherwise: the producer is unusable; rebuild.
- ``_CONFLICT``: another transactional call is still in progress (librdkafka marks it
  retriable, but this call can never succeed until that one is resumed); rebuild.
- ``txn_requires_abort()``: the transaction did not commit; abort it, undo, rewind.
- ``retriable()``: call the same method again, with backoff (commit may still land; never
  undo it).
- anything else before commit was called: the transaction cannot have committed; abort.
  After commit was called: the outcome is unknown; memory is dropped and rebuilt from the
  committed changelog (never undone, which could lose a committed login).

A call refused because its client is in a fatal state (``produce()``, a consumer's error
message) says only ``_FATAL``; ``resolve`` asks the client which fatal error it was.

Every call is given the transaction timeout, and librdkafka does not always keep to it:
``send_offsets_to_transaction`` waits for as long as its request to the group coordinator has
not been sent, and when that coordinator died, the request can wait for a broker state change
that never comes (librdkafka issues 5456 and 5511, both in 2.12: an enforcer was found waiting
in the loop for good after the node coordinating its transactions and its group was killed). So
each call runs in a worker thread and is given up as stuck (``CallStuck``) once ``stuck_after``
has passed: the clients are rebuilt beside it, or, if the stuck call could still change our
transactional id's epoch once it returns, the process exits for its supervisor
(``rebuild_beside``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException

from sessionwarden.ops.logs import error_fields

log = logging.getLogger(__name__)


class Action(Enum):
    RETRY = "retry"
    ABORT = "abort"
    REBUILD = "rebuild"  # drop clients and memory, restore from the committed log
    EXIT = "exit"  # fenced by another instance: stop for the supervisor


CONSUME = "consume"  # the call named by a consumer's fatal error
FETCH = "fetch"  # the input consumer that stopped fetching (a rebuild, never a fence)
PRODUCER_FENCED = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)
RETRY_BACKOFF_S = 0.05  # the first pause between retries of a call; doubled each time
RETRY_BACKOFF_MAX_S = 1.0
STUCK_FACTOR = 2.0  # a call is stuck once twice the timeout it was given has passed
EPOCH_CALLS = frozenset({"init_transactions", "abort_transaction"})
"""Calls that may still bump our transactional id's epoch when they return: a new producer
initialised beside one of them stuck could be fenced by it afterwards."""

T = TypeVar("T")


def resolve(err: KafkaError, fatal_error: Callable[[], KafkaError | None]) -> KafkaError:
    """``err``, or for a bare ``_FATAL`` the client's own fatal error (``fatal_error()``; None
    when it cannot tell), which says whether the client was fenced."""
    if err.code() != KafkaError._FATAL:
        return err
    found = fatal_error()
    return err if found is None else found


class Fence(Enum):
    TAKEN_OVER = "taken_over"  # the producer, by another process with our transactional id
    TXN_TIMED_OUT = "txn_timed_out"  # the producer, after the coordinator aborted our txn
    MEMBER = "member"  # the consumer's static member (group.instance.id)


def fence_kind(
    err: KafkaError, txn_age_s: float | None, txn_timeout_s: float, consumer: bool = False
) -> Fence | None:
    """Which fence ``err`` is, whichever call saw it (``consumer``: a consumer's error);
    None if it is none. ``txn_age_s``: time since the producer began its last transaction
    or was initialised (None: unknown, taken as old).

    TAKEN_OVER: the producer was fenced sooner than the transaction timeout after its last
    transaction began: the coordinator cannot have timed it out, so another process took over
    our transactional id. TXN_TIMED_OUT: fenced later; the coordinator aborted our own
    transaction (slow input, a slow disk, a broker stall). MEMBER: the consumer's static
    member fenced, by our own rejoin after a broker outage or by a second process with our
    instance id (FenceWindow tells them apart).
    """
    if (consumer and consumer_fatal(err)) or err.code() == KafkaError.FENCED_INSTANCE_ID:
        return Fence.MEMBER
    if err.code() in PRODUCER_FENCED:
        young = txn_age_s is not None and txn_age_s < txn_timeout_s
        return Fence.TAKEN_OVER if young else Fence.TXN_TIMED_OUT
    return None


def fence_action(
    err: KafkaError, txn_age_s: float | None, txn_timeout_s: float, consumer: bool = False
) -> Action | None:
    """What a fence calls for (``fence_kind``): EXIT when taken over, else REBUILD; None if
    ``err`` is no fence."""
    kind = fence_kind(err, txn_age_s, txn_timeout_s, consumer)
    if kind is None:
        return None
    return Action.EXIT if kind is Fence.TAKEN_OVER else Action.REBUILD


def classify(
    err: KafkaError,
    committing: bool,
    txn_age_s: float | None,
    txn_timeout_s: float,
    retry_left_s: float,
) -> Action:
    """The action for ``err`` raised by a transactional call.

    ``committing``: commit_transaction was called for the open transaction (its outcome may
    be "committed"). ``txn_age_s``: time since the producer began its last transaction or
    was initialised (None: unknown). ``retry_left_s``: what remains of the retry budget of
    this call.
    """
    fence = fence_action(err, txn_age_s, txn_timeout_s)
    if fence is not None:
        return fence
    if err.fatal() or err.code() in (KafkaError._FATAL, KafkaError._CONFLICT):
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
    """A static member fenced ``limit`` times within ``window_s``: another process has our
    instance id (each rebuild of ours fences it, and it fences us back), so exit. Once after
    an outage: rebuild. Producer fences are not counted: ``fence_kind`` tells them apart."""

    def __init__(self, limit: int = 3, window_s: float = 600.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: list[float] = []

    def fenced(self, now: float) -> bool:
        """Record a fencing at ``now``; True if it is time to exit."""
        self._times = [t for t in self._times if t > now - self.window_s] + [now]
        return len(self._times) >= self.limit


def describe_timed_out(err: KafkaError, txn_age_s: float, txn_timeout_s: float) -> str:
    """The log line for a producer fenced because its own transaction timed out."""
    return (
        f"fenced ({err.name()}) {txn_age_s:.1f} s after the transaction began, past "
        f"transaction.timeout.ms ({txn_timeout_s:g} s): the coordinator aborted our own "
        "transaction (slow input, disk or broker); no other process is involved"
    )


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


def stuck_after(timeout_s: float) -> float:
    """How long a client call given ``timeout_s`` may take before it counts as stuck: twice
    its timeout, the margin for a process starved of CPU."""
    return STUCK_FACTOR * timeout_s


def rebuild_beside(call: str) -> bool:
    """Whether the clients may be rebuilt while ``call`` is stuck in the old producer, which
    cannot be destroyed while a call is in it. Not for a call that may still bump our
    transactional id's epoch once it returns (``EPOCH_CALLS``): that would fence the new
    producer, so only a restart ends it. ``send_offsets_to_transaction`` and
    ``commit_transaction`` cannot: a transactional producer bumps its epoch only when the
    application aborts, and the new producer's ``init_transactions`` fences the old one."""
    return call not in EPOCH_CALLS


class CallStuck(Exception):
    """A client call that did not return within ``bound_s``; it is left running in its
    thread (a librdkafka call cannot be interrupted)."""

    def __init__(self, call: str, bound_s: float) -> None:
        super().__init__(f"{call} did not return within {bound_s:g} s")
        self.call = call
        self.bound_s = bound_s


class _Worker:
    """A daemon thread running the calls handed to it, one at a time (handing a call to a
    waiting thread costs a fifth of starting one)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="kafka-calls", daemon=True).start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            job()
            del job  # holds the call, and the client it was made on, until the next one


_workers = threading.local()  # each calling thread hands its calls to a worker of its own


def call_within(name: str, fn: Callable[[], T], bound_s: float) -> T:
    """``fn()`` in a worker thread: its result, or the exception it raised; raises CallStuck
    if it has not returned within ``bound_s``. The worker is then left in the call, and the
    next call gets a new one."""
    worker: _Worker | None = getattr(_workers, "worker", None)
    if worker is None:
        worker = _workers.worker = _Worker()
    done = threading.Event()
    outcome: list[Any] = []

    def job() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller, raised there
            outcome.append((False, exc))
        finally:
            done.set()

    worker.jobs.put(job)
    if not done.wait(bound_s):
        _workers.worker = None
        raise CallStuck(name, bound_s)
    ok, value = outcome.pop()
    if not ok:
        raise value
    result: T = value
    return result


def call_transactional(
    name: str,
    fn: Callable[[float], Any],
    committing: bool,
    txn_started: float | None,
    txn_timeout_s: float,
    retry_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stuck_s: float | None = None,
) -> None:
    """Call a transactional method (given its timeout), retrying retriable errors for
    ``retry_s`` with exponential backoff; anything else raises TxnFailure with the action
    ``classify`` chose. ``txn_started``: monotonic time the producer began its last
    transaction or was initialised (None: unknown). Each try runs in a worker thread and
    raises StuckFailure if it has not returned within ``stuck_s`` (``stuck_after`` of the
    timeout by default). Logs the first retry and, if there were more, one summary at the
    end."""
    bound_s = stuck_after(txn_timeout_s) if stuck_s is None else stuck_s
    first = clock()
    give_up = first + retry_s
    retries = 0
    err: KafkaError | None = None
    try:
        while True:
            try:
                call_within(name, lambda: fn(txn_timeout_s), bound_s)
                return
            except CallStuck as stuck:
                raise StuckFailure(stuck) from None
            except KafkaException as exc:
                err = exc.args[0]
                assert err is not None
                now = clock()
                age = None if txn_started is None else now - txn_started
                action = classify(err, committing, age, txn_timeout_s, give_up - now)
                if action is not Action.RETRY:
                    raise TxnFailure(action, err, name) from exc
                if retries == 0:
                    log.warning(
                        describe(action, err, ""), extra={"call": name, **error_fields(err)}
                    )
                pause = min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S * 2**retries, give_up - now)
                retries += 1
                sleep(max(0.0, pause))
    finally:
        if retries > 1 and err is not None:
            log.warning(
                "transactional call retried",
                extra={
                    "call": name,
                    "retries": retries,
                    "retry_s": round(clock() - first, 3),
                    **error_fields(err),
                },
            )


class TxnFailure(Exception):
    """A transactional call failed in a way retrying does not fix; ``action`` says what next."""

    def __init__(self, action: Action, err: KafkaError, call: str) -> None:
        super().__init__(f"{call}: {err.name()}: {err.str()}")
        self.action = action
        self.err = err
        self.call = call


def produce_refused(exc: KafkaException) -> Exception:
    """What a ``produce()`` refused inside an open transaction calls for. librdkafka refuses
    with ``_STATE`` once the transaction has failed (its records timed out, say, or the
    coordinator aborted it): the batch is aborted, as the same failure would be at commit,
    and the abort itself tells a fence apart. Anything else is returned as it is (the rebuild
    path judges it)."""
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError) and err.code() == KafkaError._STATE:
        return TxnFailure(Action.ABORT, err, "produce")
    refused: Exception = exc
    return refused


class StuckFailure(TxnFailure):
    """A transactional call that did not return within its bound (``CallStuck``): the
    clients are rebuilt beside it, or the process exits (``rebuild_beside``)."""

    def __init__(self, stuck: CallStuck) -> None:
        err = KafkaError(KafkaError._TIMED_OUT, str(stuck))
        super().__init__(Action.REBUILD, err, stuck.call)
        self.bound_s = stuck.bound_s


class EnforcerExit(Exception):
    """The enforcer must stop and be restarted by its supervisor; ``code`` is the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit code {code}")
        self.code = code


def forget_frames(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and of the exceptions it was raised from or during. Their
    frames hold what the failed calls held, such as the bound method of the producer that
    ``call_transactional`` called: kept, they keep a producer alive that is being replaced.
    librdkafka's producer has no close(); it stops only when destroyed, and one left running
    with our transactional id retries its own epoch bump once the broker answers again,
    racing the new producer for the id."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)  # skips frames still running
            current.__traceback__ = None
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


def cause_of(exc: BaseException) -> str:
    """A bounded label for an abort or a recovery: the call and the Kafka error's name."""
    if isinstance(exc, StuckFailure):
        return f"{exc.call}: stuck"
    if isinstance(exc, TxnFailure):
        return f"{exc.call}: {exc.err.name()}"
    return str(error_fields(exc)["error"])
