"""Drives one PartitionEnforcer the way the Kafka shell does, with plain numbers."""

from __future__ import annotations

from typing import Any

from sessionwarden.contracts.inputs import AuthEvent
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.partition import Emit
from sessionwarden.policy import Policy
from tests.unit.streams.enforcer.factories import T0, policy


class Harness:
    """Drives one partition the way the Kafka shell does: every step is one batch."""

    def __init__(self, with_policy: Policy | None = None) -> None:
        self.policy = with_policy if with_policy is not None else policy()
        self.enforcer = PartitionEnforcer(self.policy)
        self.outputs: list[Emit] = []
        self.changelog: list[tuple[str, bytes | None]] = []

    def feed(self, *events: AuthEvent, now: float | None = None) -> list[str | None]:
        self.enforcer.state.begin()
        results = []
        for event in events:
            clock = now if now is not None else event.occurred_at.timestamp() - T0
            results.append(self.enforcer.apply(event, T0 + clock))
        self._commit()
        return results

    def tick(self, now: float) -> int:
        self.enforcer.state.begin()
        fired = self.enforcer.fire_due(T0 + now, T0 + now)
        self._commit()
        return fired

    def _commit(self) -> None:
        self.changelog.extend(self.enforcer.state.changelog())
        self.enforcer.state.commit()
        self.outputs.extend(self.enforcer.state.take_outputs())

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
