"""Drives one partition through the shell's own ``Batch`` (batch.py), with plain numbers: every
``feed`` and ``tick`` is one transaction, on a producer fake that keeps what was produced."""

from __future__ import annotations

from typing import Any

from sessionwarden.config.settings import Settings, TopicNames
from sessionwarden.contracts.inputs import AuthEvent
from sessionwarden.enforcer.batch import Batch, TxnCalls
from sessionwarden.enforcer.context import EnforcerContext
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.horizon import PartitionClock
from sessionwarden.enforcer.engine.partition import Emit
from sessionwarden.enforcer.runtime import PartitionRuntime
from sessionwarden.policy import Policy
from tests.unit.enforcer.factories import T0, policy

SETTINGS = Settings()  # frozen, so shared: reading the environment costs milliseconds


class RecordingProducer:
    """The transactional producer's calls a batch makes; ``produced`` keeps (topic, key, value)."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, Any, bytes | None]] = []

    def begin_transaction(self) -> None:
        pass

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: Any = None,
        partition: int = -1,
        headers: Any = None,
        on_delivery: Any = None,
    ) -> None:
        self.produced.append((topic, key, value))

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float = -1) -> None:
        pass

    def commit_transaction(self, timeout: float = -1) -> None:
        pass

    def abort_transaction(self, timeout: float = -1) -> None:
        pass

    def poll(self, timeout: float = -1) -> int:
        return 0


class FireAt:
    """Ends every session due at ``now``: no broker, so no broker-time horizon to wait for."""

    def fire_due(self, parts: dict[int, PartitionRuntime], now: float) -> int:
        return sum(rt.enforcer.fire_due(now, now) for rt in parts.values())


class Harness:
    """Drives one partition the way the Kafka shell does: every step is one batch."""

    def __init__(self, with_policy: Policy | None = None) -> None:
        self.policy = with_policy if with_policy is not None else policy()
        self.ctx = EnforcerContext(SETTINGS, self.policy, TopicNames(), lambda: T0)
        self.ctx.parts[0] = PartitionRuntime(PartitionEnforcer(self.policy), PartitionClock(0.0))
        self.producer = RecordingProducer()
        self.batch = Batch(self.ctx, self.producer, TxnCalls(10.0, 0.0), lambda: None, FireAt())
        self.outputs: list[Emit] = []
        self.changelog: list[tuple[str, bytes | None]] = []

    @property
    def enforcer(self) -> PartitionEnforcer:
        return self.ctx.parts[0].enforcer

    @enforcer.setter
    def enforcer(self, enforcer: PartitionEnforcer) -> None:
        """Take over another enforcer (one restored from the changelog) on the partition."""
        self.ctx.parts[0].enforcer = enforcer

    def feed(self, *events: AuthEvent, now: float | None = None) -> list[str | None]:
        """One batch applying ``events``; returns each one's dead-letter detail (None: not
        dead-lettered)."""
        self.batch.begin()
        results = []
        for event in events:
            clock = now if now is not None else event.occurred_at.timestamp() - T0
            at = T0 + clock
            results.append(self.batch.decide(self.enforcer, event, at, at).detail)
        self._commit()
        return results

    def tick(self, now: float) -> int:
        self.batch.begin()
        fired = self.batch.fire(T0 + now)
        self._commit()
        return fired

    def _commit(self) -> None:
        produced = self.producer.produced
        produced.clear()
        self.outputs.extend(self.batch.commit(consumed=False))
        state_topic = self.ctx.topics.enforcer_state
        self.changelog.extend(
            (key, value) for topic, key, value in produced if topic == state_topic
        )

    def revocations(self) -> list[dict[str, Any]]:
        return [o.value for o in self.outputs if o.value["type"] == "revocation"]

    def audits(self, kind: str) -> list[dict[str, Any]]:
        return [o.value for o in self.outputs if o.topic == "audit" and o.value["type"] == kind]

    def ended(self) -> list[tuple[str, str, float]]:
        return [
            (r["session_id"], r["reason"], r["effective_at"].timestamp() - T0)
            for r in self.revocations()
        ]

    def restored(self) -> PartitionEnforcer:
        """A fresh enforcer restored from everything this one's changelog holds."""
        fresh = PartitionEnforcer(self.policy)
        for key, value in self.changelog:
            fresh.state.restore(key, value)
        fresh.state.finish_restore()
        return fresh
