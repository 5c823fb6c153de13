"""The enforcer loop on fake Kafka clients (its KafkaClients factory hands them out): what it
commits with what, and what it does when a transactional call fails."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, KafkaError, KafkaException, TopicPartition

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.inputs import AuthEvent
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.horizon import PartitionClock
from sessionwarden.enforcer.loop import EXIT_FENCED, EnforcerLoop, KafkaClients
from sessionwarden.enforcer.runtime import PartitionRuntime
from sessionwarden.enforcer.txn import Action, EnforcerExit, TxnFailure
from tests.unit.enforcer.factories import T0, login, policy
from tests.unit.enforcer.fakes import FakeCommandsConsumer

NOW = T0 + 10.0  # the wall clock, and every record's broker append time
GROUP = "group-metadata"


class FakeMessage:
    """An input record, appended by the broker at ``NOW``."""

    def __init__(self, topic: str, offset: int, key: bytes | None, value: bytes) -> None:
        self._topic, self._offset, self._key, self._value = topic, offset, key, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_LOG_APPEND_TIME, int(NOW * 1000)


class FakeConsumer:
    """One input partition (0) read from ``log``; ``seek`` moves the read position back."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.log: list[FakeMessage] = []
        self.read = 0
        self.committed_offset = 0
        self.seeks: list[int] = []

    def append(self, event: AuthEvent | None, value: bytes | None = None) -> None:
        key = event.user_id.encode() if event is not None else b"k"
        data = encode(event) if event is not None else value
        assert data is not None
        self.log.append(FakeMessage(self.topic, len(self.log), key, data))

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        pass

    def list_topics(self, topic: str, timeout: float = -1) -> Any:
        partitions = {0: SimpleNamespace()}  # one partition: every key belongs on it
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions=partitions, error=None)})

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        taken = self.log[self.read : self.read + num_messages]
        self.read += len(taken)
        return taken

    def consumer_group_metadata(self) -> str:
        return GROUP

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.read) for tp in partitions]

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> Any:
        return [TopicPartition(tp.topic, tp.partition, self.committed_offset) for tp in partitions]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append(tp.offset)
        self.read = tp.offset

    def assignment(self) -> list[TopicPartition]:
        return []

    def unsubscribe(self) -> None:
        pass

    def memberid(self) -> None:
        return None

    def close(self) -> None:
        pass


class FakeProducer:
    """The transactional producer: records each call in ``calls``; ``fail`` maps a method
    name to the errors its next calls raise, one per call."""

    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.calls: list[tuple[str, Any]] = []
        self.fail: dict[str, list[KafkaError]] = {}

    def _call(self, name: str, arg: Any = None) -> None:
        self.calls.append((name, arg))
        errors = self.fail.get(name)
        if errors:
            raise KafkaException(errors.pop(0))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls if name != "poll"]

    def produced(self) -> list[str]:
        return [topic for name, topic in self.calls if name == "produce"]

    def init_transactions(self, timeout: float = -1) -> None:
        self._call("init_transactions")

    def begin_transaction(self) -> None:
        self._call("begin_transaction")

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self._call("produce", topic)

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float = -1) -> None:
        self._call(
            "send_offsets_to_transaction", ([(tp.partition, tp.offset) for tp in offsets], group)
        )

    def commit_transaction(self, timeout: float = -1) -> None:
        self._call("commit_transaction")
        self.consumer.committed_offset = self.sent_offset()

    def abort_transaction(self, timeout: float = -1) -> None:
        self._call("abort_transaction")

    def sent_offset(self) -> int:
        sent = [arg for name, arg in self.calls if name == "send_offsets_to_transaction"]
        return int(sent[-1][0][0][1])

    def poll(self, timeout: float = -1) -> int:
        self._call("poll")
        return 0

    def purge(self, *args: Any) -> None:
        self._call("purge")

    def flush(self, timeout: float = -1) -> int:
        self._call("flush")
        return 0


class FakeRestoreConsumer:
    def close(self) -> None:
        pass


class FakeClients(KafkaClients):
    """Hands out fakes; a rebuild gets a fresh consumer and producer. Every input consumer
    reads the same log."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.consumers: list[FakeConsumer] = []
        self.producers: list[FakeProducer] = []
        self.log: list[FakeMessage] = []

    def consumer(self, config: dict[str, Any]) -> Any:
        consumer = FakeConsumer(self.topic)
        consumer.log = self.log
        if self.consumers:  # a rebuilt client starts from what committed
            consumer.read = consumer.committed_offset = self.consumers[-1].committed_offset
        self.consumers.append(consumer)
        return consumer

    def commands_consumer(self, config: dict[str, Any]) -> Any:
        return FakeCommandsConsumer()

    def restore_consumer(self, config: dict[str, Any]) -> Any:
        return FakeRestoreConsumer()

    def producer(self, config: dict[str, Any]) -> Any:
        self.producers.append(FakeProducer(self.consumers[-1]))
        return self.producers[-1]

    def admin(self, config: dict[str, Any]) -> Any:
        return SimpleNamespace()


def started(**overrides: Any) -> tuple[EnforcerLoop, FakeClients]:
    """A started loop owning input partition 0 (restored, empty)."""
    settings = Settings(
        **{
            "metrics_enabled": False,
            "transaction_timeout_ms": 10_000,
            "txn_retry_timeout_s": 1.0,
            **overrides,
        }
    )
    clients = FakeClients(settings.topics.input)
    loop = EnforcerLoop(settings, policy(), clock=lambda: NOW, clients=clients)
    loop.start()
    own(loop)
    return loop, clients


def own(loop: EnforcerLoop) -> None:
    loop.parts[0] = PartitionRuntime(PartitionEnforcer(loop.policy, 0), PartitionClock(2.0))


def live(loop: EnforcerLoop) -> int:
    return sum(rt.enforcer.state.live_sessions() for rt in loop.parts.values())


def at(calls: list[str], name: str) -> int:
    return calls.index(name)


def test_a_batch_commits_its_input_offsets_with_its_outputs_in_one_transaction() -> None:
    """State, outputs and input offsets commit atomically, or a restart would lose a login or
    apply it twice."""
    loop, clients = started()
    clients.consumers[-1].append(login(0, "s1"))
    clients.consumers[-1].append(login(0, "s2", user="u2"))
    assert 2 == loop.step()
    producer = clients.producers[-1]
    calls = producer.names()
    assert "begin_transaction" == calls[1]  # after init_transactions
    last_produce = len(calls) - 1 - calls[::-1].index("produce")
    assert at(calls, "begin_transaction") < last_produce < at(calls, "commit_transaction")
    assert last_produce < at(calls, "send_offsets_to_transaction") < at(calls, "commit_transaction")
    sent = [arg for name, arg in producer.calls if name == "send_offsets_to_transaction"]
    assert [([(0, 2)], GROUP)] == sent
    state, audit = loop.topics.enforcer_state, loop.topics.audit
    # one changelog record per session (a user's first session stands for the user), and
    # each login's session_started audit event
    assert [audit, audit, state, state] == sorted(producer.produced())
    assert (2, 1, 2) == (live(loop), loop.stats.batches, loop.stats.events)


def test_an_undecodable_record_is_dead_lettered_and_its_offset_commits_with_it() -> None:
    """A poison record never stops the partition: it leaves with its dead letter."""
    loop, clients = started()
    clients.consumers[-1].append(None, b"not json")
    assert 1 == loop.step()
    producer = clients.producers[-1]
    assert [loop.topics.dlq] == producer.produced()
    assert "commit_transaction" in producer.names()
    assert 1 == producer.sent_offset()
    assert 1 == loop.stats.dead_letters


def test_a_batch_with_nothing_read_or_made_ends_its_transaction_locally() -> None:
    loop, clients = started()
    assert 0 == loop.step()
    calls = clients.producers[-1].names()
    assert ["init_transactions", "begin_transaction", "abort_transaction"] == calls
    assert 0 == loop.stats.aborts


def test_a_commit_refused_for_abort_rolls_the_state_back_and_reads_the_batch_again() -> None:
    """The transaction did not commit: its sessions must not stay in memory (they would be
    enforced but lost at the next restore), and its records are read again."""
    loop, clients = started()
    consumer, producer = clients.consumers[-1], clients.producers[-1]
    consumer.append(login(0, "s1"))
    producer.fail["commit_transaction"] = [
        KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True)
    ]
    assert 0 == loop.step()
    calls = producer.names()
    assert at(calls, "commit_transaction") < at(calls, "abort_transaction")
    assert (0, 1, [0]) == (live(loop), loop.stats.aborts, consumer.seeks)
    assert 0 == loop.parts[0].next_offset

    assert 1 == loop.step()  # read again, committed this time
    assert (1, 1) == (live(loop), producer.sent_offset())


def test_a_producer_fenced_by_another_instance_exits_3_without_aborting() -> None:
    """Another process took our transactional id: running on would fence it in turn, and a
    fenced producer cannot even abort."""
    loop, clients = started()
    clients.consumers[-1].append(login(0, "s1"))
    producer = clients.producers[-1]
    producer.fail["commit_transaction"] = [
        KafkaError(KafkaError.PRODUCER_FENCED, "fenced", fatal=True)
    ]
    with pytest.raises(EnforcerExit) as stopped:
        loop.run()
    assert EXIT_FENCED == stopped.value.code
    assert "abort_transaction" not in producer.names()
    assert "purge" in producer.names() and "flush" not in producer.names()
    assert 1 == len(clients.producers), "exited: no rebuild"


def test_a_commit_stuck_past_its_retries_rebuilds_the_clients_and_drops_the_state() -> None:
    """commit_transaction was called: the outcome is unknown, so nothing is undone (that could
    lose a committed login); the clients are rebuilt and the state restored from the log."""
    loop, clients = started(txn_retry_timeout_s=0.1)
    clients.consumers[-1].append(login(0, "s1"))
    first = clients.producers[-1]
    first.fail["commit_transaction"] = [
        KafkaError(KafkaError._TIMED_OUT, "stuck", retriable=True) for _ in range(100)
    ]
    with pytest.raises(TxnFailure) as failure:
        loop.step()
    assert Action.REBUILD is failure.value.action
    retried = first.names().count("commit_transaction")
    assert retried > 1, "retriable: retried before giving up"
    loop._recover(failure.value)  # as run() does
    assert "abort_transaction" not in first.names()
    assert "purge" in first.names()
    assert 2 == len(clients.producers)
    assert "init_transactions" == clients.producers[-1].names()[0]
    assert ({}, 1, 0) == (loop.parts, loop.stats.recoveries, loop.stats.aborts)


def test_an_abort_that_fails_too_is_raised_for_the_rebuild_path() -> None:
    """An abortable commit whose abort fails: the loop cannot know the state, so it rebuilds
    (run() passes the failure to _recover) instead of carrying on."""
    loop, clients = started()
    clients.consumers[-1].append(login(0, "s1"))
    producer = clients.producers[-1]
    producer.fail["commit_transaction"] = [
        KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True)
    ]
    producer.fail["abort_transaction"] = [KafkaError(KafkaError._TIMED_OUT, "timed out")]
    stop_after_rebuild(loop, clients)
    loop.run()
    assert 2 == len(clients.producers)
    assert (1, 0) == (loop.stats.recoveries, loop.stats.aborts)
    assert "init_transactions" == clients.producers[-1].names()[0], "started again"


def stop_after_rebuild(loop: EnforcerLoop, clients: FakeClients) -> None:
    """Stop the loop at the first consume of the rebuilt consumer."""
    real: Callable[[dict[str, Any]], Any] = clients.consumer

    def consumer(config: dict[str, Any]) -> Any:
        made = real(config)
        if len(clients.consumers) > 1:
            consume = made.consume

            def consume_then_stop(n: int = 1, timeout: float = -1) -> list[FakeMessage]:
                loop.stop()
                return list(consume(n, timeout))

            made.consume = consume_then_stop
        return made

    clients.consumer = consumer  # type: ignore[method-assign]


def test_a_produce_refused_for_a_failed_transaction_aborts_the_batch_not_the_clients() -> None:
    """librdkafka refuses produce() with _STATE once the open transaction has failed (its
    records timed out, say): that calls for an abort, as the same failure would at commit, not
    for a rebuild and a restore of every partition."""
    loop, clients = started()
    consumer, producer = clients.consumers[-1], clients.producers[-1]
    consumer.append(login(0, "s1"))
    producer.fail["produce"] = [KafkaError(KafkaError._STATE, "Local: Erroneous state")]
    assert 0 == loop.step()
    calls = producer.names()
    assert "abort_transaction" in calls and "commit_transaction" not in calls
    assert (0, 1, [0], 0) == (live(loop), loop.stats.aborts, consumer.seeks, loop.stats.recoveries)

    assert 1 == loop.step()  # read again, committed this time, by the same clients
    assert (1, 1, 1) == (live(loop), producer.sent_offset(), len(clients.producers))
