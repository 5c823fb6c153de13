"""The enforcer's Kafka shell: a batched consume-transform-produce loop on transactions.

Per turn (``step``): consume -> ``Batch.begin`` -> ``Batch.apply`` each record within the input
budget (records on the wrong partition for their key are forwarded instead) -> ``Batch.fire``
-> ``Batch.commit`` (changelog records, revocations, audit events and dead letters, then the
input offsets with the consumer group's generation, then ``commit_transaction``). State,
outputs and input offsets commit atomically (batch.py owns the transaction's life); an
aborted batch also undoes its in-memory changes and the loop rewinds the consumer to the
committed offsets. Errors follow librdkafka's contract (txn.py); a batch whose outcome is
unknown is never undone: the clients are rebuilt and state is restored from the committed
changelog instead. The loop's Kafka clients come from the factory it is given
(``KafkaClients``), so a unit test drives it on fakes.

Rebalance callbacks run inside ``consume()``, when no transaction is open: a revoked partition's
state is dropped (everything it did is committed); an assigned one is paused and restored from
a local snapshot and the changelog a slice per loop turn (assign.py, restore.py) before any of
its input is processed. Snapshots of committed state are taken between transactions
(checkpoints.py).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from sessionwarden.caep.transmitter import CaepTransmitter
from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.assign import Assignments
from sessionwarden.enforcer.batch import Batch, TxnCalls
from sessionwarden.enforcer.checkpoints import Checkpoints
from sessionwarden.enforcer.commands import CommandQueue, CommandsReader
from sessionwarden.enforcer.context import EnforcerContext
from sessionwarden.enforcer.engine.budget import CHECK_EVERY, InputBudget, RecordLimit
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.forward import Router
from sessionwarden.enforcer.engine.horizon import received_time
from sessionwarden.enforcer.firing import Firing
from sessionwarden.enforcer.kafka_config import (
    admin_config,
    commands_config,
    consumer_config,
    producer_config,
    restore_config,
)
from sessionwarden.enforcer.metrics import observer_for
from sessionwarden.enforcer.restore import Restorer
from sessionwarden.enforcer.txn import (
    CONSUME,
    FETCH,
    Action,
    EnforcerExit,
    Fence,
    FenceWindow,
    StuckFailure,
    TxnFailure,
    cause_of,
    consumer_fatal,
    describe,
    describe_timed_out,
    fence_kind,
    forget_frames,
    rebuild_beside,
    resolve,
)
from sessionwarden.kafka.stall import AdminEnds, Key, Stall, StallWatch
from sessionwarden.ops.logs import error_fields
from sessionwarden.policy import Policy

log = logging.getLogger(__name__)

Clock = Callable[[], float]

GC_GEN0_THRESHOLD = 50_000
DUE_POLL_TIMEOUT_S = 0.005  # the wait for input while a deadline is due
EXIT_FENCED = 3
EXIT_UNRECOVERABLE = 4
LEAVE_GROUP_S = 5.0  # a planned stop's wait for its LeaveGroup to be sent
STALL_PROBE_TIMEOUT_S = 1.0
"""The fetch-stall watches' end-offset asks block the loop for about this at most (asked only
when positions stood still for kafka_fetch_stall_s)."""


class KafkaClients:
    """Makes the loop's Kafka clients from their librdkafka configs (kafka_config.py): the
    input consumer, the transactional producer, the admin client (probes, changelog facts)
    and the changelog restore consumer. A unit test passes fakes of the calls the loop makes."""

    def consumer(self, config: dict[str, Any]) -> Consumer:
        return Consumer(config)

    def commands_consumer(self, config: dict[str, Any]) -> Consumer:
        return Consumer(config)

    def restore_consumer(self, config: dict[str, Any]) -> Consumer:
        return Consumer(config)

    def producer(self, config: dict[str, Any]) -> Producer:
        return Producer(config)

    def admin(self, config: dict[str, Any]) -> AdminClient:
        return AdminClient(config)


class EnforcerLoop:
    """Owns the Kafka clients (made by ``clients``), the batch that carries each transaction
    (batch.py), the assignments, and one PartitionEnforcer per owned partition (``parts``)."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        clock: Clock = time.time,
        clients: KafkaClients | None = None,
        monotonic: Clock = time.monotonic,
    ) -> None:
        """``monotonic``: the clock of the input consumer's stall watch."""
        # Wall clock on purpose: deadlines are enforced in real time, even on silent partitions.
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self._monotonic = monotonic
        self.topics = settings.topics
        self.metrics = observer_for(settings, self.topics)
        self.ctx = EnforcerContext(
            settings,
            policy,
            self.topics,
            clock,
            self.metrics,
            Checkpoints.from_settings(settings),  # None: no local state
        )
        self.parts = self.ctx.parts
        self.stats = self.ctx.stats
        # CAEP tokens are signed outside the transactions (sessionwarden/caep/transmitter.py).
        self._caep = CaepTransmitter.from_settings(settings)
        self._clients = clients or KafkaClients()
        self._stop = threading.Event()
        self._txn = TxnCalls(
            settings.enforcer.transaction_timeout_ms / 1000, settings.enforcer.txn_retry_timeout_s
        )
        self._recoveries_in_row = 0
        self._fences = FenceWindow()
        self._fenced = False  # the producer cannot even abort: close must not try
        self._budget = InputBudget.for_timeout(settings.enforcer.transaction_timeout_ms / 1000)
        self._limit = RecordLimit(settings.enforcer.batch_size)
        self._carry: list[Message] = []  # consumed, left by the input budget to the next batch
        self._reseeked: dict[Key, int] | None = None  # processed offsets at the last seek back
        self._connect()

    def _connect(self) -> None:
        s, ctx, clients = self.settings, self.ctx, self._clients
        self._consumer = clients.consumer(consumer_config(s))
        self._producer = clients.producer(producer_config(s))
        self._txn.stuck = False  # a new producer: nothing is stuck in it
        self._admin = clients.admin(admin_config(s))
        policy = self.policy
        restorer = Restorer(
            clients.restore_consumer(restore_config(s)),
            self._admin,
            s.topics.enforcer_state,
            lambda partition: PartitionEnforcer(policy, partition),
            ctx.checkpoints,
            admin_factory=lambda: clients.admin(admin_config(s)),
            consumer_factory=lambda: clients.restore_consumer(restore_config(s)),
            stall_s=s.kafka.fetch_stall_s,
            monotonic=self._monotonic,
            stalled=lambda: self.metrics.fetch_stalled("restore"),
        )
        self._assign = Assignments(ctx, self._consumer, restorer)
        self._router: Router | None = None
        self._firing = Firing(
            self._consumer,
            self._admin,
            self.topics,
            s.enforcer.producer_delay_budget_s,
            s.enforcer.batch_size,
            self.clock,
            admin_factory=lambda: clients.admin(admin_config(s)),
        )
        consumer = self._consumer
        self._batch = Batch(
            ctx, self._producer, self._txn, lambda: consumer.consumer_group_metadata(), self._firing
        )
        # The input and commands consumers' fetches are watched (kafka.stall), the ends asked
        # of an admin client of the watches' own; the input's for the owned partitions only
        # (restoring ones are paused).
        ends = AdminEnds(lambda: clients.admin(admin_config(s)))
        queue = CommandQueue()
        self.commands = CommandsReader(
            clients.commands_consumer(commands_config(s)),
            consumer,
            s.topics.commands,
            queue,
            reopen=lambda: clients.commands_consumer(commands_config(s)),
            watch=StallWatch(
                s.kafka.fetch_stall_s,
                ends,
                probe_timeout_s=STALL_PROBE_TIMEOUT_S,
                clock=self._monotonic,
                fallback=lambda: {
                    (s.topics.commands, p): o for p, o in queue.next_offsets().items()
                },
            ),
            stalled=lambda: self.metrics.fetch_stalled("commands"),
        )
        self._batch.commands = self.commands
        self._input_watch = StallWatch(
            s.kafka.fetch_stall_s,
            ends,
            probe_timeout_s=STALL_PROBE_TIMEOUT_S,
            clock=self._monotonic,
            fallback=lambda: {
                (self.topics.input, p): rt.next_offset for p, rt in self.parts.items()
            },
        )
        self._reseeked = None

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Process until ``stop()``; then finish the open batch, leave the group, flush.
        Raises EnforcerExit when it must stop for its supervisor (fenced, unrecoverable),
        also when closing found the producer fenced."""
        planned = False
        try:
            if self._caep is not None:
                self._caep.start()
            self.metrics.start()
            self._start_or_recover()
            while not self._stop.is_set():
                try:
                    self.step()
                except (TxnFailure, KafkaException) as exc:
                    self._recover(exc)
            planned = True
        finally:
            self.close(leave=planned)
        if self._fenced:
            raise EnforcerExit(EXIT_FENCED)

    def _start_or_recover(self) -> None:
        try:
            self.start()
        except (TxnFailure, KafkaException) as exc:
            self._recover(exc)

    def start(self) -> None:
        """Fence any predecessor with our transactional id and join the group."""
        # Each batch allocates hundreds of thousands of short-lived objects; with the default
        # gen-0 threshold (700) the collector runs every few events and walks the session
        # heap far too often (measured: 1.65x throughput at 50k, bench/enforcer_drain.py).
        gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
        self._txn.began()  # a fence from here on is another process's
        self._call("init_transactions", self._producer.init_transactions)
        # Producers hash keys over the topic's real partition count; the setting until it exists.
        md = self._consumer.list_topics(self.topics.input, timeout=30).topics.get(self.topics.input)
        found = len(md.partitions) if md is not None and md.error is None else 0
        self._router = Router(found or self.settings.kafka.partitions)
        self._consumer.subscribe(
            [self.topics.input],
            on_assign=self._assign.on_assign,
            on_revoke=self._assign.on_revoke,
            on_lost=self._assign.on_revoke,
        )
        log.info(
            "enforcer started",
            extra={
                "transactional_id": self.settings.transactional_id,
                "policy_version": self.policy.version,
            },
        )

    def close(self, leave: bool = False) -> None:
        """Never raises: a failing broker (or disk) must not turn a clean stop into a
        traceback. ``leave``: a planned stop, whose partitions go to the others at once. In
        order: abort the open batch; leave the group only if that succeeded (its partitions
        must not move while it may be open); snapshot; close the clients. A fence found on
        the way sets ``_fenced`` (run() then exits 3): no flush, queued records are purged.
        A producer with a call stuck in it is not called again (purged, not flushed)."""
        # A fenced batch's changes are in memory only; so are those of a batch whose call stuck.
        stuck = self._txn.stuck
        committed_state = not self._fenced and not (stuck and self._batch.open)
        unusable = self._fenced or stuck  # the producer can deliver nothing more
        if self._batch.open and not unusable:  # a fenced producer cannot abort
            committed_state, unusable = self._abort_on_shutdown()
            unusable = unusable or self._txn.stuck
        if leave and committed_state:
            self._quietly("leaving the consumer group", self._leave_group)
        self._quietly("snapshotting state", lambda: self._assign.shutdown(committed_state))
        if unusable:  # nothing queued can be delivered any more: no flush
            self._quietly("purging the producer", self._purge)
        self._quietly("closing the clients", lambda: self._disconnect(None if unusable else 10))
        if self._caep is not None:
            self._quietly("closing the CAEP transmitter", self._caep.close)
        self._quietly("closing the metrics", self.metrics.close)
        log.info("enforcer stopped", extra={"events": self.stats.events})

    def _abort_on_shutdown(self) -> tuple[bool, bool]:
        """Abort the open batch. Returns (aborted: memory is the committed state, the
        producer is unusable: fenced or in a fatal state)."""
        try:
            self._abort("shutdown")
            return True, False
        except (TxnFailure, KafkaException) as exc:
            try:
                self._exit_if_fenced(exc)  # sets _fenced and says so
            except EnforcerExit:
                return False, True
            log.warning("could not abort the open transaction on shutdown", extra=error_fields(exc))
            err = exc.err if isinstance(exc, TxnFailure) else exc.args[0]
            return False, isinstance(err, KafkaError) and bool(err.fatal())
        except Exception:
            log.exception("could not abort the open transaction on shutdown")
        return False, False

    def _quietly(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            log.exception("stopping: %s failed", what)

    def _leave_group(self) -> None:
        """Hand every partition over now. A static member (group.instance.id) that only closes
        sends no LeaveGroup, so the group would move its partitions only after
        ``session_timeout_ms``; unsubscribing sends it. A crash still waits for the timeout,
        which is what lets a restarted instance take them back without a rebalance.

        librdkafka first serves the revocation (on_revoke runs inside consume) and empties
        the assignment; only when the unassign is done does it send LeaveGroup, clearing the
        member id as it does (librdkafka 2.12's debug log: sent as the revocation ended,
        answered 7 ms later; the assignment had emptied before). So wait for the member id,
        not the assignment; close() then waits for the LeaveGroup response (librdkafka
        stalls termination on it)."""
        started = time.monotonic()
        deadline = started + LEAVE_GROUP_S
        try:
            handed_over = len(self._consumer.assignment())
            self._consumer.unsubscribe()
            while self._consumer.memberid() and time.monotonic() < deadline:
                # Serves the revocation; records read meanwhile are not ours to process (their
                # next owner reads them from the committed offsets).
                self._consumer.consume(self.settings.enforcer.batch_size, 0.1)
            left = not self._consumer.memberid()
        except KafkaException as exc:
            log.warning("could not leave the consumer group", extra=error_fields(exc))
            return
        took = round(time.monotonic() - started, 3)
        fields = {"partitions_handed_over": handed_over, "leave_s": took}
        if left:
            log.info("left the consumer group", extra=fields)
        else:
            log.warning(
                "did not leave the consumer group within %s s: its partitions move to the "
                "others only after the session timeout",
                LEAVE_GROUP_S,
                extra=fields,
            )

    def _purge(self) -> None:
        try:
            self._producer.purge()
        except KafkaException as purge_error:
            log.warning("purging the old producer failed", extra=error_fields(purge_error))

    def _disconnect(self, flush_s: float | None) -> None:
        """Close the clients; flush the producer for ``flush_s`` (None: not at all)."""
        closers: list[tuple[str, Callable[[], Any]]] = [
            ("consumer", self._consumer.close),
            ("restore consumer", self._assign.restorer.close),
            ("commands consumer", self.commands.close),
        ]
        if flush_s is not None:
            closers.append(("producer", lambda: self._producer.flush(flush_s)))
        for name, close in closers:
            try:
                close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing a client failed", extra={"client": name, **error_fields(exc)})

    def _recover(self, exc: Exception) -> None:
        """Rebuild every client and restore all state from the committed log, as a restart
        would, until a start succeeds; after ``max_recoveries`` in a row without a committed
        batch, exit. The old producer is destroyed before the new one is made (its traceback
        and every object built around it let go): it must not race the new one for our
        transactional id. Only one with a call stuck in it lives on (``_given_up``)."""
        while True:
            forget_frames(exc)
            self.metrics.recovering(cause_of(exc))
            self._rebuild(exc)
            try:
                self.start()
                return
            except (TxnFailure, KafkaException) as again:
                exc = again

    def _rebuild(self, exc: Exception) -> None:
        self._exit_if_fenced(exc)
        if isinstance(exc, StuckFailure):
            self._given_up(exc)
        self._recoveries_in_row += 1
        self.stats.recoveries += 1
        if self._recoveries_in_row > self.settings.enforcer.max_recoveries:
            log.error(
                "enforcer cannot recover, exiting",
                extra={"attempts": self.settings.enforcer.max_recoveries, **error_fields(exc)},
            )
            raise EnforcerExit(EXIT_UNRECOVERABLE) from exc
        log.error(
            "enforcer lost its transaction state, rebuilding clients and restoring",
            extra={"attempt": self._recoveries_in_row, **error_fields(exc)},
        )
        self._batch.lost()
        self._assign.forget(list(self.parts))
        self.parts.clear()
        self._purge()
        self._disconnect(flush_s=0)
        self._release_clients()
        self._connect()

    def _given_up(self, exc: StuckFailure) -> None:
        """A call stuck in the producer (txn.py): counted; the process exits 4 for its
        supervisor unless the clients may be rebuilt beside it (``rebuild_beside``). The old
        producer then lives on until the stuck call returns, fenced by the new one's
        ``init_transactions``."""
        self.stats.stuck_calls += 1
        fields = {"call": exc.call, "bound_s": exc.bound_s, "stuck_calls": self.stats.stuck_calls}
        if not rebuild_beside(exc.call):
            log.error(
                "a Kafka client call did not return in time and could still change our "
                "transactional id's epoch: exiting for a restart",
                extra=fields,
            )
            raise EnforcerExit(EXIT_UNRECOVERABLE) from exc
        log.error(
            "a Kafka client call did not return in time: rebuilding the clients beside it",
            extra=fields,
        )

    def _release_clients(self) -> None:
        """Let go of the closed clients and of everything built around them, so that reference
        counting destroys the old producer here, before ``_connect`` makes its successor."""
        del self._batch, self._firing, self._assign, self._router, self.commands
        del self._producer, self._consumer, self._admin

    def _exit_if_fenced(self, exc: Exception) -> None:
        """Raise EnforcerExit(3) if ``exc`` is a fence that ends the process, whichever call
        saw it (txn.fence_action): a transactional call, ``produce()`` or a poll of the
        producer, or the consumer."""
        if isinstance(exc, TxnFailure):
            err, consumer = exc.err, exc.call == CONSUME
        elif isinstance(exc, KafkaException) and isinstance(exc.args[0], KafkaError):
            err, consumer = exc.args[0], False
        else:
            return
        if not consumer:
            err = resolve(err, self._producer_fatal_error)
            if err.code() == KafkaError._FATAL and not isinstance(exc, TxnFailure):
                # A call refused for a fatal client, and the producer has no fatal error:
                # the consumer's call (its only fatal error is a static member fenced).
                consumer = True
        timeout_s = self.settings.enforcer.transaction_timeout_ms / 1000
        # Since the last begin_transaction (or init_transactions), open or not: a fence seen
        # between transactions (the poll after a commit, begin_transaction itself) is judged
        # by it too.
        age = time.monotonic() - self._txn.started
        kind = fence_kind(err, age, timeout_s, consumer)
        if isinstance(exc, TxnFailure) and exc.action is Action.EXIT:
            kind = Fence.TAKEN_OVER
        if kind is Fence.TXN_TIMED_OUT:
            log.warning(describe_timed_out(err, age, timeout_s))
        if kind is Fence.TAKEN_OVER or (
            kind is Fence.MEMBER and self._fences.fenced(time.monotonic())
        ):
            self._fenced = True
            log.error(describe(Action.EXIT, err, self.settings.transactional_id))
            raise EnforcerExit(EXIT_FENCED) from exc

    def _producer_fatal_error(self) -> KafkaError | None:
        """The producer's fatal error: confluent-kafka raises it from the first poll after
        librdkafka raised it (the Python client has no other query); None if not raised."""
        try:
            self._producer.poll(0)
        except KafkaException as exc:
            err = exc.args[0]
            return err if isinstance(err, KafkaError) else None
        return None

    # -- transactional calls ----------------------------------------------------------------

    def _call(self, name: str, fn: Callable[[float], Any], committing: bool = False) -> None:
        """A transactional call, bounded (``TxnCalls``): a call that does not return within
        twice the transaction timeout raises StuckFailure."""
        self._txn(name, fn, committing)

    # -- one batch ------------------------------------------------------------------------

    def step(self) -> int:
        """Consume one batch and commit what the input budget let it take, with everything that
        became due. Returns the events taken; the rest of the batch is carried to the next."""
        started = self.metrics.step()
        self._watch_input()  # between transactions
        self._assign.step()  # between transactions: snapshots, then a slice of restore
        due = self._firing.probe_ahead(self.parts)
        if self._take_commands():
            due = True  # a command waits for its input partition: read it without delay
        msgs = self._take_input(due)
        now = self.clock()
        if not self.parts:
            self._assign.unowned(msgs)
            return 0
        batch = self._batch
        try:
            taken = self._transaction(batch, msgs, now)
        except TxnFailure as exc:
            # Whatever the cause, the next attempt carries half as many records, down to one:
            # a record whose outputs cannot commit ends up alone, and is dead-lettered bare.
            self._drop_carry()
            self._limit.failed()
            batch.keep_payload = not self._limit.alone
            if exc.action is not Action.ABORT:
                raise
            log.warning(
                describe(exc.action, exc.err, self.settings.transactional_id),
                extra={"call": exc.call, "error": exc.err.name(), "limit": self._limit.current},
            )
            self._abort(cause_of(exc))
            return 0
        except BaseException:
            self._drop_carry()  # the clients are rebuilt: what they consumed is read again
            raise
        self._limit.committed()
        batch.keep_payload = True
        self.metrics.batch_done(taken, started, self.parts, self._consumer)
        return taken

    def _take_commands(self) -> bool:
        """Follow the owned partitions with the commands reader and take what arrived; probe
        the input partitions that commands wait for (a command applies once its partition is
        known read through its append time). Returns whether any command is held so."""
        reader = self.commands
        reader.follow(self.parts)
        reader.poll()
        now = self.clock()
        held = []
        for p, rt in self.parts.items():
            first = reader.queue.first_received(p, now)
            if first is not None and first > rt.clock.read_through():
                held.append(p)
        if held:
            self._firing.probe(self.parts, held)
        return bool(held)

    def _take_input(self, due: bool) -> list[Message]:
        """The records carried from the last batch, then what the consumer has (without waiting
        when records are carried). Carried records consumed before a rebalance are stale: their
        partitions are sought back to them and they are read again."""
        carry, self._carry = self._carry, []
        room = self._limit.current - len(carry)
        generation = self._assign.generation
        fresh = (
            self._consumer.consume(room, 0 if carry else self.poll_timeout(due)) if room > 0 else []
        )
        if carry and generation != self._assign.generation:
            self._seek_back(carry)
            carry = []
        return carry + fresh if carry else fresh

    def _drop_carry(self) -> None:
        self._carry = []
        for rt in self.parts.values():
            rt.held = None

    def poll_timeout(self, due: bool = False) -> float:
        # While a partition restores the loop turns quickly, so the restore keeps moving; with
        # a deadline due it takes what input has arrived and fires it without waiting for more.
        if self._assign.restorer.pending:
            return 0.0
        wait = self.settings.enforcer.poll_timeout_s
        return min(DUE_POLL_TIMEOUT_S, wait) if due else wait

    def _transaction(self, batch: Batch, msgs: list[Message], now: float) -> int:
        """One transaction: begin, apply (within the input budget), fire, commit. Returns the
        records taken."""
        commits = batch.commits
        batch.begin()
        taken, consumed = self._apply(batch, msgs, now)
        batch.fire(now)
        router = self._router
        assert router is not None
        commands = batch.apply_commands(now, router)
        batch.commit(consumed or commands > 0)
        if batch.commits != commits:
            self._recoveries_in_row = 0
        return taken

    def _apply(self, batch: Batch, msgs: list[Message], now: float) -> tuple[int, bool]:
        """Apply (or forward, or dead-letter) the batch's records until the record limit or the
        input budget is reached; the rest are carried to the next transaction. Returns the
        records taken and whether any input was consumed."""
        last: dict[int, int] = {}
        router = self._router
        assert router is not None
        budget = self._budget
        limit = self._limit.current
        started = time.monotonic()
        for owned in self.parts.values():
            owned.held = None
        taken = taken_bytes = 0
        produced = 0  # outputs and changelog records the applied records made
        for msg in msgs:
            # The first record is always taken, so every transaction makes progress.
            if taken and (
                taken >= limit
                or budget.records_spent(produced)
                or (
                    taken % CHECK_EVERY == 0
                    and budget.spent(time.monotonic() - started, taken_bytes, batch.pending_bytes)
                )
            ):
                self._hold(msgs[taken:])
                break
            taken += 1
            err = msg.error()
            if err is not None:
                if consumer_fatal(err):
                    raise TxnFailure(Action.REBUILD, err, CONSUME)
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra=error_fields(err))
                continue
            p = msg.partition()
            rt = self.parts.get(p)
            if rt is None:  # not ours any more, or still restoring (paused): read it later
                self._assign.unowned([msg])
                continue
            value = msg.value()
            taken_bytes += len(value) if value else 0
            last[p] = msg.offset()
            key = msg.key()
            target = router.target(key, p)
            if target is not None:
                assert key is not None
                batch.forward(router, msg, key, target)
                continue
            r = received_time(msg.timestamp(), TIMESTAMP_LOG_APPEND_TIME)
            rt.clock.observe(r)
            state = rt.enforcer.state
            before = state.pending_records()
            batch.apply(rt, msg, now, now if r is None else r)
            produced += state.pending_records() - before
        self.stats.events += taken
        for p, off in last.items():
            self.parts[p].next_offset = off + 1
        return taken, bool(last)

    def _hold(self, rest: list[Message]) -> None:
        """Records the budget did not take: carried to the next transaction, in order. Until
        then their partitions count as read only up to the first of them."""
        self._carry = rest
        for msg in rest:
            rt = self.parts.get(msg.partition()) if msg.error() is None else None
            if rt is not None and rt.held is None:
                rt.held = msg.offset()
        self.stats.budget_cuts += 1

    def _seek_back(self, stale: list[Message]) -> None:
        """Seek each owned partition back to its first stale carried record."""
        first: dict[int, int] = {}
        for msg in stale:
            if msg.error() is None and msg.partition() in self.parts:
                first.setdefault(msg.partition(), msg.offset())
        for p, offset in first.items():
            self._consumer.seek(TopicPartition(self.topics.input, p, offset))
            self.parts[p].held = None

    # -- input fetch stalls -------------------------------------------------------------------

    def _watch_input(self) -> None:
        """Between transactions: an input consumer that stopped fetching while records wait on
        owned partitions (after a hung broker; kafka.stall) would leave logouts and role
        changes unread and every deadline of those partitions unproven: enforcement would
        silently stop. The first time, each owned partition is sought back to the offset the
        loop has processed (between transactions, the committed one), as after an aborted
        batch: what was consumed and not applied (carried records) is read again, nothing is
        skipped or applied twice. If it stalls again with nothing processed since, every client
        is rebuilt and state restored from the committed log (``_recover``)."""
        owned = [TopicPartition(self.topics.input, p) for p in sorted(self.parts)]
        if not owned:
            return
        stall = self._input_watch.check(self._consumer, owned)
        if stall is None:
            return
        self.stats.fetch_stalls += 1
        self.metrics.fetch_stalled("input")
        processed = {(self.topics.input, p): rt.next_offset for p, rt in self.parts.items()}
        again = processed == self._reseeked  # nothing processed since the last seek back
        log.warning(
            "the input consumer stopped fetching with records waiting: "
            + ("rebuilding the clients" if again else "seeking back to the processed offsets"),
            extra=stall.fields(),
        )
        if again:
            self._drop_carry()  # consumed by the client about to go: read again after
            raise TxnFailure(Action.REBUILD, _stalled(stall), FETCH)
        try:
            self._reseek()
        except KafkaException as exc:
            raise TxnFailure(Action.REBUILD, _stalled(stall), FETCH) from exc
        self._reseeked = processed
        self._input_watch.reopened()

    def _reseek(self) -> None:
        """Seek every owned partition to the next offset to process (no batch is open: it is
        the committed offset), dropping what was consumed and not applied."""
        self._drop_carry()
        for p, rt in self.parts.items():
            self._consumer.seek(TopicPartition(self.topics.input, p, rt.next_offset))

    # -- abort ----------------------------------------------------------------------------

    def _abort(self, cause: str) -> None:
        """Abort the open transaction (it cannot have committed), undo its in-memory changes
        and rewind to the committed offsets. Raises TxnFailure if even the abort fails."""
        self._batch.abort(cause)
        self._assign.rewind()
        log.warning("batch aborted and rewound", extra={"cause": cause})


def _stalled(stall: Stall) -> KafkaError:
    return KafkaError(
        KafkaError._TIMED_OUT,
        f"input consumer stood still {stall.still_s:.1f}s behind the last stable offsets",
    )
