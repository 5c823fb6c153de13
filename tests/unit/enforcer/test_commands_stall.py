"""The operator commands consumer stopping to fetch with commands waiting (as after a hung
broker thawed): a revoke command an operator sent would never apply. The reader reopens it
where it stood; every command reaches the queue once."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from sessionwarden.enforcer.commands import CommandQueue, CommandsReader
from sessionwarden.kafka.stall import StallWatch
from tests.unit.enforcer.test_command_shell import Record
from tests.unit.stall_fakes import EndsAdmin, ends_of

TOPIC = "sessionwarden.commands"


class Command(Record):
    def error(self) -> None:
        return None


class Commands:
    """One commands partition (0) of ``log``; returns nothing more after ``wedge_after``."""

    def __init__(self, log: list[Command], wedge_after: int = 10**6) -> None:
        self.log, self.left = log, wedge_after
        self.next: dict[int, int] = {}
        self.closed = False

    def incremental_assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.next[tp.partition] = 0 if tp.offset == OFFSET_BEGINNING else tp.offset

    def consume(self, n: int, timeout: float) -> list[Command]:
        at = self.next.get(0, 0)
        taken = self.log[at : at + min(n, self.left)]
        self.next[0], self.left = at + len(taken), self.left - len(taken)
        return taken

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in self.next]

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, tp.partition, self.next[tp.partition]) for tp in tps]

    def close(self) -> None:
        self.closed = True


class Group:
    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in tps]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def reader(first: Commands, log: list[Command]) -> tuple[CommandsReader, list[Commands], Clock]:
    made: list[Commands] = []
    clock = Clock()

    def reopen() -> Commands:
        made.append(Commands(log))
        return made[-1]

    queue = CommandQueue()
    watch = StallWatch(
        10, ends_of(EndsAdmin(lambda tp: len(log))), clock=clock,
        fallback=lambda: {(TOPIC, p): o for p, o in queue.next_offsets().items()},
    )  # fmt: skip
    return CommandsReader(first, Group(), TOPIC, queue, reopen, watch), made, clock


def polled(commands: CommandsReader, clock: Clock, seconds: float) -> None:
    end = clock.t + seconds
    while clock.t < end:
        clock.t += 0.5
        commands.poll()


def test_a_commands_consumer_that_stopped_is_reopened_where_it_stood() -> None:
    log = [Command(b"{}", at=1, off=i) for i in range(6)]
    first = Commands(log, wedge_after=2)
    commands, made, clock = reader(first, log)
    commands.follow([0])
    polled(commands, clock, 30)
    assert first.closed and 1 == len(made) == commands.reopened
    assert 6 == commands.queue.waiting(0), "every command queued once"


def test_an_idle_commands_consumer_is_left_alone() -> None:
    log = [Command(b"{}", at=1, off=i) for i in range(2)]
    commands, made, clock = reader(Commands(log), log)
    commands.follow([0])
    polled(commands, clock, 60)
    assert ([], 2) == (made, commands.queue.waiting(0))


def test_nothing_is_watched_without_an_owned_partition() -> None:
    """The commands partitions follow the owned input partitions: none owned, none read."""
    first = Commands([Command(b"{}", at=1)], wedge_after=0)
    commands, made, clock = reader(first, first.log)
    polled(commands, clock, 60)
    assert [] == made
