"""Operator commands through the enforcer loop on fake Kafka clients: applied in the batch's
transaction with their offsets, held until their partition is read through them, put back
when the transaction aborts."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, KafkaError, KafkaException, TopicPartition

from sessionwarden.enforcer.loop import EnforcerLoop
from tests.unit.enforcer.factories import login, policy
from tests.unit.enforcer.test_loop import (
    NOW,
    FakeClients,
    FakeMessage,
    Settings,
    live,
    own,
)

OPERATOR = "User:sessionwarden-operator"


class CommandMessage(FakeMessage):
    """A command record on partition 0, appended at ``at``."""

    def __init__(self, offset: int, value: bytes, key: bytes | None, at: float) -> None:
        super().__init__("sessionwarden.commands", offset, key, value)
        self._at = at

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_LOG_APPEND_TIME, int(self._at * 1000)


class CommandsConsumer:
    """The commands reader's consumer: hands out ``log`` once assigned."""

    def __init__(self) -> None:
        self.log: list[CommandMessage] = []
        self.assigned: list[tuple[int, int]] = []
        self.read = 0

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += [(tp.partition, tp.offset) for tp in partitions]

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[CommandMessage]:
        taken = self.log[self.read :]
        self.read = len(self.log)
        return taken

    def close(self) -> None:
        pass


class Admin:
    """Last-stable-offset probes that never answer: nothing proves a partition read."""

    def list_offsets(self, *args: Any, **kwargs: Any) -> Any:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "unreachable"))


class Clients(FakeClients):
    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.commands = CommandsConsumer()

    def commands_consumer(self, config: dict[str, Any]) -> Any:
        return self.commands

    def admin(self, config: dict[str, Any]) -> Any:
        return Admin()


def command(user: str = "u1", **fields: Any) -> bytes:
    doc = {
        "type": "revoke_sessions",
        "command_id": str(uuid.uuid4()),
        "issued_at": "2027-01-15T08:00:05Z",
        "tenant": "acme",
        "scope": "user",
        "user_id": user,
        "operator": OPERATOR,
        "reason_admin": "compromised",
        **fields,
    }
    return orjson.dumps(doc)


def started() -> tuple[EnforcerLoop, Clients]:
    settings = Settings(metrics_enabled=False, transaction_timeout_ms=10_000)
    clients = Clients(settings.topics.input)
    loop = EnforcerLoop(settings, policy(), clock=lambda: NOW, clients=clients)
    loop.start()
    own(loop)
    return loop, clients


def sent_offsets(clients: Clients) -> list[Any]:
    producer = clients.producers[-1]
    return [arg[0] for name, arg in producer.calls if name == "send_offsets_to_transaction"]


def test_a_command_commits_its_revocations_and_its_offset_in_one_transaction() -> None:
    """Applied but not committed, a restart would apply it again; committed without its
    revocations, it would be lost."""
    loop, clients = started()
    clients.consumers[-1].append(login(0, "s1"))
    loop.step()
    clients.commands.log.append(CommandMessage(4, command(), b"u1", NOW - 5))
    clients.consumers[-1].append(login(1, "s2", user="u2"))  # the input has moved past it

    loop.step()

    producer = clients.producers[-1]
    last = producer.names()[-5:]
    assert "commit_transaction" == last[-1]
    assert [(0, 2), (0, 5)] == sent_offsets(clients)[-1]  # input and commands, one call
    assert 1 == live(loop)
    assert [0] == [p for p, _ in clients.commands.assigned]  # follows the owned input


def test_a_command_waits_until_its_partition_is_read_through_its_append_time() -> None:
    """A login appended before the command but not read yet must not survive it."""
    loop, clients = started()
    loop.parts[0].clock.proven_at = NOW - 100  # nothing proves the input read to NOW + 5
    clients.consumers[-1].append(login(0, "s1"))
    clients.commands.log.append(CommandMessage(0, command(), b"u1", NOW + 5))

    loop.step()

    assert (1, 1) == (live(loop), loop.commands.queue.waiting(0))


def test_an_aborted_transaction_applies_its_command_again_in_the_next() -> None:
    """The revocations of an aborted batch never happened: the command must still apply."""
    loop, clients = started()
    clients.consumers[-1].append(login(0, "s1"))
    loop.step()
    clients.commands.log.append(CommandMessage(0, command(), b"u1", NOW - 5))
    clients.consumers[-1].append(login(1, "s2", user="u2"))
    clients.producers[-1].fail["commit_transaction"] = [
        KafkaError(KafkaError._TIMED_OUT, "x", retriable=False, txn_requires_abort=True)
    ]

    loop.step()
    after_abort = live(loop)
    clients.consumers[-1].append(login(2, "s3", user="u3"))
    loop.step()

    s1 = loop.parts[0].enforcer.state.sessions[("acme", "s1")]
    assert (1, 2, "Ended") == (after_abort, live(loop), type(s1).__name__)
