"""The operator commands consumer stopping to fetch with commands waiting (as after a hung
broker thawed): a revoke command an operator sent would never apply. The reader reopens it
where it stood; every command reaches the queue once."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import TopicPartition

from sessionwarden.enforcer.commands import CommandQueue, CommandsReader
from sessionwarden.kafka.stall import StallWatch
from tests.unit.enforcer.test_command_shell import Record
from tests.unit.stall_fakes import Clock, EndsAdmin, Wedging, ends_of

TOPIC = "sessionwarden.commands"


class Command(Record):
    def error(self) -> None:
        return None


class Group:
    """The enforcer's group consumer: no commands offset committed yet."""

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in tps]


def reader(
    first: Wedging, stalled: Callable[[], object] | None = None
) -> tuple[CommandsReader, list[Wedging], Clock]:
    made: list[Wedging] = []
    clock = Clock()

    def reopen() -> Wedging:
        made.append(Wedging(TOPIC, first.log))
        return made[-1]

    queue = CommandQueue()
    watch = StallWatch(
        10, ends_of(EndsAdmin(lambda tp: len(first.log[tp.partition]))), clock=clock,
        fallback=lambda: {(TOPIC, p): o for p, o in queue.next_offsets().items()},
    )  # fmt: skip
    return CommandsReader(first, Group(), TOPIC, queue, reopen, watch, stalled), made, clock


def polled(commands: CommandsReader, clock: Clock, seconds: float) -> None:
    end = clock.t + seconds
    while clock.t < end:
        clock.t += 0.5
        commands.poll()


def commands_log(n: int) -> dict[int, list[Command]]:
    return {0: [Command(b"{}", at=1, off=i) for i in range(n)]}


def test_a_commands_consumer_that_stopped_is_reopened_where_it_stood() -> None:
    first = Wedging(TOPIC, commands_log(6), wedge_after=2)
    told: list[str] = []
    commands, made, clock = reader(first, lambda: told.append("stalled"))
    commands.follow([0])
    polled(commands, clock, 30)
    assert first.closed and 1 == len(made) == commands.reopened
    assert ["stalled"] == told, "the reopen reaches the metrics, not only the log"
    assert 6 == commands.queue.waiting(0), "every command queued once"


def test_an_idle_commands_consumer_is_left_alone() -> None:
    commands, made, clock = reader(Wedging(TOPIC, commands_log(2)))
    commands.follow([0])
    polled(commands, clock, 60)
    assert ([], 2) == (made, commands.queue.waiting(0))


def test_nothing_is_watched_without_an_owned_partition() -> None:
    """The commands partitions follow the owned input partitions: none owned, none read."""
    commands, made, clock = reader(Wedging(TOPIC, commands_log(1), wedge_after=0))
    polled(commands, clock, 60)
    assert [] == made
