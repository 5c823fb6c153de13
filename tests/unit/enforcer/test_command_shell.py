"""The shell's side of operator commands: which wait, which apply, what is dead-lettered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

from sessionwarden.enforcer.commands import CommandQueue, apply_command_record
from sessionwarden.enforcer.engine.commands import OperatorCommands
from sessionwarden.enforcer.engine.forward import Router, murmur2_partition
from tests.unit.enforcer.factories import T0, login
from tests.unit.enforcer.harness import Harness

OPERATOR = "User:oncall"


@dataclass
class Record:
    """A consumed command record: what the shell reads of a confluent_kafka.Message."""

    raw: bytes | None
    at: float
    off: int = 0
    part: int = 0
    k: bytes | None = None

    def partition(self) -> int:
        return self.part

    def offset(self) -> int:
        return self.off

    def key(self) -> bytes | None:
        return self.k

    def value(self) -> bytes | None:
        return self.raw

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_LOG_APPEND_TIME, int((T0 + self.at) * 1000)

    def topic(self) -> str:
        return "sessionwarden.commands"


def command_bytes(**fields: object) -> bytes:
    doc: dict[str, object] = {
        "type": "revoke_sessions",
        "command_id": str(uuid.uuid4()),
        "issued_at": "2027-01-15T08:00:10Z",
        "tenant": "acme",
        "scope": "user",
        "user_id": "u1",
        "operator": OPERATOR,
        "reason_admin": "compromised",
    }
    doc.update(fields)
    return orjson.dumps({k: v for k, v in doc.items() if v is not None})


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, reason: str, detail: str, msg: object) -> None:
        self.sent.append((reason, detail))


def applying(partitions: int = 1) -> tuple[Harness, OperatorCommands, Router, Letters]:
    h = Harness()
    h.feed(login(1, "a1", "u1"))
    h.enforcer.state.begin()
    return h, OperatorCommands(h.enforcer, frozenset({OPERATOR})), Router(partitions), Letters()


def test_a_good_command_record_is_applied() -> None:
    """Decoded, key checked, applied: the user's session ends."""
    _h, commands, router, letters = applying()

    outcome = apply_command_record(
        commands, router, Record(command_bytes(), 10, k=b"u1"), T0 + 10, letters
    )

    assert outcome is not None and (1, []) == (outcome.revoked, letters.sent)


def test_bad_command_records_are_dead_lettered_with_a_reason_and_change_nothing() -> None:
    """Malformed, no reason, unknown kind, wrong key, operator not allowed: each a letter."""
    h, commands, router, letters = applying()
    records = [
        Record(b"{nope", 10, k=b"u1"),
        Record(command_bytes(reason_admin=None), 10, k=b"u1"),
        Record(command_bytes(type="drop_tenant"), 10, k=b"u1"),
        Record(command_bytes(), 10, k=b"u2"),
        Record(command_bytes(operator="User:intern"), 10, k=b"u1"),
    ]

    for record in records:
        apply_command_record(commands, router, record, T0 + 10, letters)

    assert [
        "undecodable",
        "schema_violation",
        "unknown_type",
        "key_mismatch",
        "operator_not_allowed",
    ] == [reason for reason, _ in letters.sent]
    assert 1 == h.enforcer.state.live_sessions()
    assert [] == h.enforcer.state.take_outputs()


def test_a_user_command_on_another_partition_than_its_keys_is_dead_lettered() -> None:
    """Applied there it would find none of the user's sessions and say 'nothing revoked'."""
    _h, commands, router, letters = applying(partitions=8)
    right = murmur2_partition(b"u1", 8)
    wrong = (right + 1) % 8

    apply_command_record(
        commands, router, Record(command_bytes(), 10, part=wrong, k=b"u1"), T0 + 10, letters
    )

    assert ["key_mismatch"] == [reason for reason, _ in letters.sent]


def test_a_command_waits_until_its_partition_is_read_through_its_append_time() -> None:
    """A login appended before the command must be applied before it, or it would survive."""
    queue = CommandQueue()
    queue.own(0, 5)
    queue.add(Record(b"{}", 10, off=5))
    queue.add(Record(b"{}", 20, off=6))

    early = queue.take(0, T0 + 9, T0 + 30)
    first = queue.take(0, T0 + 15, T0 + 30)

    assert ([], [5], {0: 6}) == (early, [m.offset() for m in first], queue.offsets())


def test_an_aborted_batch_puts_its_commands_back_in_order_and_rewinds_the_offsets() -> None:
    """The transaction that applied them did not commit: they apply again in the next."""
    queue = CommandQueue()
    queue.own(0, 5)
    for off, at in ((5, 10), (6, 11), (7, 50)):
        queue.add(Record(b"{}", at, off=off))
    queue.take(0, T0 + 20, T0 + 60)
    taken = queue.offsets()

    queue.aborted()

    assert ({0: 7}, {}) == (taken, queue.offsets())
    assert [5, 6] == [m.offset() for m in queue.take(0, T0 + 20, T0 + 60)]
    assert ({0: 7}, 1) == (queue.offsets(), queue.waiting(0))
    queue.committed()
    assert {} == queue.offsets()


def test_records_of_a_partition_no_longer_owned_are_dropped() -> None:
    """After a rebalance the new owner reads them from the committed offset."""
    queue = CommandQueue()
    queue.own(0, 0)
    queue.disown(0)

    queue.add(Record(b"{}", 1))

    assert ([], {}) == (queue.owned(), queue.offsets())


def test_a_held_command_stays_held_once_its_batch_commits_and_not_after_an_abort() -> None:
    """The next batch goes on from the hold only if the tenant record committed; an aborted
    hold is held again (same record id), and a finished command leaves no hold behind."""
    queue = CommandQueue()
    queue.own(0, 5)
    queue.add(Record(b"{}", 10, off=5))
    queue.add(Record(b"{}", 11, off=6))

    queue.hold(0)
    queue.aborted()
    aborted = queue.held(0)
    queue.hold(0)
    queue.committed()
    committed = queue.held(0)
    queue.done(0)

    assert (False, True, False) == (aborted, committed, queue.held(0))
