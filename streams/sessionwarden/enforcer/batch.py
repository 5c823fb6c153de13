"""One transaction over every owned partition, from ``begin`` to ``commit`` or ``abort``: the
one object that owns a batch's life. The loop drives it (loop.py), and so do the unit tests.

Its steps, in the order a batch takes them:

1. ``begin``: ``begin_transaction``; every owned partition's state and broker-time clock open
   a batch (their changes can be undone until it ends).
2. ``apply`` each consumed record: decode it, check its key, let the partition's enforcer
   decide (``PartitionEnforcer.apply`` returns an outcome), dead-letter what the outcome says,
   and tell the metrics the outcome; or ``forward`` a record on the wrong partition for its key.
3. ``fire``: sessions whose deadlines are due end (firing.py decides which partitions are read
   far enough in broker time).
4. ``commit``: produce every partition's changelog records and outputs; send the input offsets
   with the consumer group's metadata (its generation); ``commit_transaction``. Then close the
   batch on every partition (its changes become the baseline), tell the local snapshots which
   changelog offsets committed, and count and log what it emitted. A batch that produced and
   consumed nothing ends its empty transaction locally.

``abort``: ``abort_transaction`` (the transaction cannot have committed); undo every
partition's changes, forget the changelog offsets it was told of, count the abort. The loop
then rewinds the consumer to the committed offsets. ``lost``: the transaction's outcome is
unknown; nothing is undone (the loop drops the state and restores it from the committed log).

Errors of the transactional calls follow librdkafka's contract (txn.py) and are raised as
``TxnFailure``; the batch never decides between retrying, aborting and rebuilding itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import Message, Producer, TopicPartition

from sessionwarden.contracts.codec import DecodeError, decode_auth_event
from sessionwarden.contracts.inputs import AuthEvent
from sessionwarden.enforcer.commands import CommandsReader, apply_command_record
from sessionwarden.enforcer.context import EnforcerContext
from sessionwarden.enforcer.engine.commands import OperatorCommands
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.forward import Router
from sessionwarden.enforcer.engine.outcome import Outcome
from sessionwarden.enforcer.engine.partition import Emit
from sessionwarden.enforcer.outputs import Outputs
from sessionwarden.enforcer.runtime import PartitionRuntime
from sessionwarden.enforcer.txn import StuckFailure, call_transactional

log = logging.getLogger(__name__)

COMMAND_SESSIONS_PER_BATCH = 50_000
"""Sessions operator commands may end in one transaction, over all partitions: 150,000 records
(revocation, audit, changelog), far inside the producer's queue and the transaction timeout."""


class Fires(Protocol):
    """Ends the sessions that are due on the owned partitions (firing.Firing)."""

    def fire_due(self, parts: dict[int, PartitionRuntime], now: float) -> int: ...


class TxnCalls:
    """Calls the producer's transactional methods by librdkafka's contract
    (``txn.call_transactional``), and remembers when the producer began its last transaction
    or was initialised: a fence sooner than the transaction timeout after it is another
    process's doing (``txn.fence_kind``)."""

    def __init__(self, timeout_s: float, retry_s: float) -> None:
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.started = 0.0  # monotonic
        self.stuck = False  # a call is stuck in the producer: it must not be called again

    def began(self) -> None:
        self.started = time.monotonic()

    def __call__(self, name: str, fn: Callable[[float], Any], committing: bool = False) -> None:
        """Raises StuckFailure for a call that does not return within twice the transaction
        timeout (and marks the producer ``stuck``)."""
        try:
            call_transactional(name, fn, committing, self.started, self.timeout_s, self.retry_s)
        except StuckFailure:
            self.stuck = True
            raise


class Batch:
    """A transaction's life on one transactional producer; see the module docstring for its
    steps. ``group`` gives the consumer group's metadata for ``send_offsets_to_transaction``;
    ``fires`` ends due sessions."""

    def __init__(
        self,
        ctx: EnforcerContext,
        producer: Producer,
        calls: TxnCalls,
        group: Callable[[], Any],
        fires: Fires,
    ) -> None:
        self._ctx = ctx
        self._parts = ctx.parts
        self._producer = producer
        self._calls = calls
        self._group = group
        self._fires = fires
        self._metrics = ctx.metrics
        checkpoints = ctx.checkpoints
        self._checkpoints = checkpoints
        self.outputs = Outputs(
            ctx, producer, on_changelog=checkpoints.delivered if checkpoints else None
        )
        self.open = False  # a transaction is open on the producer
        self.commits = 0  # transactions committed (an empty one, ended locally, is none)
        self.commands: CommandsReader | None = None  # operator commands (commands.py)
        self._operators = ctx.settings.enforcer.allowed_operators()

    # -- begin ------------------------------------------------------------------------------

    def begin(self) -> None:
        self._calls("begin_transaction", lambda _: self._producer.begin_transaction())
        self.open = True
        self._calls.began()
        self.outputs.begin()
        for rt in self._parts.values():
            rt.enforcer.state.begin()
            rt.clock.begin()

    # -- apply ------------------------------------------------------------------------------

    def apply(self, rt: PartitionRuntime, msg: Message, now: float, received: float) -> None:
        """Decide one record of partition ``rt`` read at ``now``, appended at ``received``."""
        out = self.outputs
        try:
            event = decode_auth_event(msg.value())
        except DecodeError as exc:
            out.dead_letter(exc.reason, exc.detail, msg)
            return
        key = msg.key()
        if key != event.user_id.encode():
            # State follows the record's user; the partition follows its key. A record keyed by
            # anything else would be applied where that user's other records are not.
            out.dead_letter("key_mismatch", _key_mismatch(key), msg)
            return
        try:
            outcome = rt.enforcer.apply(event, now, received)  # what ``decide`` does, inline
        except Exception as exc:  # a bug must not stop enforcement for everyone else
            log.exception(
                "internal error applying an event",
                extra={"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()},
            )
            out.dead_letter("internal_error", f"{type(exc).__name__}: {exc}", msg)
            return
        self._metrics.applied(event.type, outcome)
        if outcome.reason is not None:
            out.dead_letter(outcome.reason, outcome.detail or "", msg)

    def decide(
        self, enforcer: PartitionEnforcer, event: AuthEvent, now: float, received: float
    ) -> Outcome:
        """The enforcer decides; the metrics record what it decided."""
        outcome = enforcer.apply(event, now, received)
        self._metrics.applied(event.type, outcome)
        return outcome

    def forward(self, router: Router, msg: Message, key: bytes, target: int) -> None:
        self.outputs.forward(router, msg, key, target)

    @property
    def pending_bytes(self) -> int:
        """Bytes of dead letters and forwards produced so far (the input budget counts them)."""
        return self.outputs.pending_bytes

    @property
    def keep_payload(self) -> bool:
        return self.outputs.keep_payload

    @keep_payload.setter
    def keep_payload(self, keep: bool) -> None:
        """False: dead letters carry hashes only (a record retried alone after its outputs
        could not commit)."""
        self.outputs.keep_payload = keep

    # -- fire -------------------------------------------------------------------------------

    def fire(self, now: float) -> int:
        """End the due sessions; returns how many ended."""
        return self._fires.fire_due(self._parts, now)

    # -- operator commands ------------------------------------------------------------------

    def apply_commands(self, now: float, router: Router) -> int:
        """Apply the operator commands whose input partition is read through their append
        time (after ``fire``: its clocks are current), ending at most
        ``COMMAND_SESSIONS_PER_BATCH`` sessions over all partitions: a larger command goes on
        in the next batches, its record first in line. Returns the records taken or begun."""
        reader = self.commands
        if reader is None or not self._parts:
            return 0
        queue = reader.queue
        share = max(1, COMMAND_SESSIONS_PER_BATCH // len(self._parts))
        taken = 0
        for p, rt in self._parts.items():
            budget = share
            read_through = rt.clock.read_through()
            while budget > 0 and (msg := queue.ready(p, read_through, now)) is not None:
                commands = OperatorCommands(rt.enforcer, self._operators)
                held = queue.held(p)
                outcome = apply_command_record(
                    commands, router, msg, now, self.outputs.dead_letter, budget, held
                )
                taken += 1
                if outcome is not None:
                    self._metrics.applied("revoke_sessions", outcome)
                    if outcome.status == "held":
                        queue.hold(p)  # its tenant record commits alone, small and first
                        break
                    if outcome.status == "partial":
                        break  # the rest in the next batch; its offset waits until then
                    budget -= outcome.revoked
                queue.done(p)
        return taken

    # -- commit -----------------------------------------------------------------------------

    def commit(self, consumed: bool) -> list[Emit]:
        """Produce, send the input offsets, commit; then close the batch on every partition.
        ``consumed``: the batch read input (its offsets must commit). Returns the outputs that
        committed."""
        produced = self.outputs.produce_batch(self._parts)
        if not (produced or consumed):
            # Nothing to commit. librdkafka ends an empty transaction locally.
            self._calls("abort_transaction", self._producer.abort_transaction)
        else:
            input_topic = self._ctx.topics.input
            offsets = [
                TopicPartition(input_topic, p, rt.next_offset) for p, rt in self._parts.items()
            ]
            if self.commands is not None:
                offsets += self.commands.offsets()
            group = self._group()
            committing = time.monotonic()
            self._calls(
                "send_offsets_to_transaction",
                lambda t: self._producer.send_offsets_to_transaction(offsets, group, t),
            )
            self._calls("commit_transaction", self._producer.commit_transaction, committing=True)
            self._metrics.committed(committing)
            self.commits += 1
        self.open = False
        if self.commands is not None:
            self.commands.queue.committed()
        emitted: list[Emit] = []
        for rt in self._parts.values():
            rt.enforcer.state.commit()
            emitted += rt.enforcer.state.take_outputs()
        if self._checkpoints is not None:
            self._checkpoints.committed()
        self.outputs.committed(emitted)
        return emitted

    # -- abort and loss ---------------------------------------------------------------------

    def abort(self, cause: str) -> None:
        """Abort the open transaction (it cannot have committed) and undo its in-memory
        changes. Raises TxnFailure if even the abort fails (nothing is undone then)."""
        self._calls("abort_transaction", self._producer.abort_transaction)
        self.open = False
        if self.commands is not None:
            self.commands.queue.aborted()
        self.outputs.aborted()
        if self._checkpoints is not None:
            self._checkpoints.aborted()
        for rt in self._parts.values():
            rt.enforcer.state.abort()
            rt.clock.abort()
        self._ctx.stats.aborts += 1
        self._metrics.aborted(cause)

    def lost(self) -> None:
        """The transaction's outcome is unknown (the clients are being rebuilt): nothing is
        undone, the changelog offsets it was told of are forgotten."""
        self.open = False
        if self._checkpoints is not None:
            self._checkpoints.aborted()


def _key_mismatch(key: bytes | None) -> str:
    """The dead-letter detail for a record whose key is not its user_id (the key itself is in
    the dead letter, never in the detail)."""
    if key is None:
        return "record has no key; auth.events records are keyed by their user_id"
    return f"record key ({len(key)} bytes) is not its user_id; auth.events records are keyed by it"
