"""The enforcer's input consumer stopping to fetch with records waiting (as after a hung broker
thawed): the loop seeks back to what it processed and, if that does not move it, rebuilds its
clients. Logouts sent after the stall are applied, each record once; an idle consumer at the
end is never touched."""

from __future__ import annotations

from typing import Any

import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.loop import EnforcerLoop
from sessionwarden.enforcer.metrics import EnforcerMetrics
from sessionwarden.enforcer.txn import FETCH, Action, TxnFailure
from tests.unit.enforcer.factories import login, logout, policy
from tests.unit.enforcer.test_loop import NOW, FakeClients, FakeConsumer, live, own
from tests.unit.stall_fakes import Clock, EndsAdmin

STALL_S = 10.0


class Wedged(FakeConsumer):
    """Returns nothing once ``wedged`` (its fetcher stopped) though records wait; a seek
    restarts it only if ``seek_heals``."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.wedged = False
        self.seek_heals = True

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        return [] if self.wedged else super().consume(num_messages, timeout)

    def seek(self, tp: Any) -> None:
        super().seek(tp)
        self.wedged = self.wedged and not self.seek_heals

    def get_watermark_offsets(
        self, partition: Any, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        """What the metrics' lag reads (its cached answer: the end of the log)."""
        return 0, len(self.log)


class Clients(FakeClients):
    """Wedged consumers; the admin clients answer the input's end from the shared log."""

    def consumer(self, config: dict[str, Any]) -> Any:
        made = super().consumer(config)
        wedged = Wedged(self.topic)
        wedged.log, wedged.read, wedged.committed_offset = made.log, made.read, made.read
        self.consumers[-1] = wedged
        return wedged

    def admin(self, config: dict[str, Any]) -> Any:
        return EndsAdmin(lambda tp: len(self.log))


def started(metrics: bool = False) -> tuple[EnforcerLoop, Clients, Clock]:
    settings = Settings(metrics_enabled=metrics, kafka_fetch_stall_s=STALL_S)
    clients = Clients(settings.topics.input)
    clock = Clock()
    loop = EnforcerLoop(settings, policy(), clock=lambda: NOW, clients=clients, monotonic=clock)
    loop.start()
    own(loop)
    return loop, clients, clock


def turn(loop: EnforcerLoop, clock: Clock, seconds: float) -> None:
    """Step the loop every half second (monotonic) for ``seconds``."""
    end = clock.t + seconds
    while clock.t < end:
        clock.t += 0.5
        loop.step()


def test_logouts_waiting_behind_a_stalled_input_consumer_are_applied_once() -> None:
    """Unread logouts would leave their sessions live until a timeout (a silent fail-open)."""
    loop, clients, clock = started(metrics=True)
    consumer = clients.consumers[-1]
    for i in range(3):
        consumer.append(login(0, f"s{i}", user=f"u{i}"))
    turn(loop, clock, 2)
    assert 3 == live(loop)
    consumer.wedged = True
    consumer.append(logout(1, "s0", user="u0"))
    consumer.append(logout(1, "s1", user="u1"))
    turn(loop, clock, STALL_S + 5)
    assert [3] == consumer.seeks, "sought back to the processed (committed) offset"
    assert 1 == live(loop)
    assert (5, 1, 0) == (loop.stats.events, loop.stats.fetch_stalls, loop.stats.recoveries)
    assert 5 == consumer.committed_offset
    assert isinstance(loop.metrics, EnforcerMetrics)
    stalls = "sessionwarden_enforcer_fetch_stalls_total"
    assert (1.0, 0.0) == (
        loop.metrics.registry.get_sample_value(stalls, {"consumer": "input"}),
        loop.metrics.registry.get_sample_value(stalls, {"consumer": "commands"}),
    ), "exported, not only logged"


def test_a_consumer_a_seek_does_not_move_gets_the_clients_rebuilt() -> None:
    loop, clients, clock = started()
    consumer = clients.consumers[-1]
    consumer.append(login(0, "s0"))
    turn(loop, clock, 2)
    consumer.wedged, consumer.seek_heals = True, False
    consumer.append(logout(1, "s0"))
    turn(loop, clock, STALL_S + 2)
    assert [1] == consumer.seeks
    with pytest.raises(TxnFailure) as failure:
        turn(loop, clock, STALL_S + 2)
    assert (Action.REBUILD, FETCH) == (failure.value.action, failure.value.call)
    loop._recover(failure.value)  # as run() does
    assert 2 == len(clients.consumers) and 1 == loop.stats.recoveries
    assert 1 == clients.consumers[-1].read, "the new consumer starts from the committed offset"


def test_an_idle_consumer_at_the_end_is_left_alone() -> None:
    loop, clients, clock = started()
    consumer = clients.consumers[-1]
    consumer.append(login(0, "s0"))
    turn(loop, clock, 120)
    assert ([], 0) == (consumer.seeks, loop.stats.fetch_stalls)


def test_a_partition_not_owned_yet_is_not_watched() -> None:
    """A partition restoring is paused: its input waits on purpose."""
    loop, clients, clock = started()
    loop.parts.clear()
    clients.consumers[-1].append(login(0, "s0"))
    clients.consumers[-1].wedged = True
    turn(loop, clock, 60)
    assert ([], 0) == (clients.consumers[-1].seeks, loop.stats.fetch_stalls)
