"""How much input one transaction may take: a time and a byte budget, and a record limit that
halves while transactions fail. Pure: the clock is passed in.

A transaction stops taking records from the consumed batch once its input work (decoding,
applying, dead-lettering, forwarding) has used ``time_s`` or ``bytes`` (input read plus records
produced for it); the rest of the batch is read again by the next transaction. So a flood of
records that are slow to reject or large to dead-letter only slows the input down: every
transaction still ends well short of the transaction timeout, and fires what is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INPUT_TIME_BUDGET_S = 0.25
"""Input work per transaction; at most a tenth of the transaction timeout (see ``for_timeout``)."""
INPUT_BYTE_BUDGET = 8 * 1024 * 1024
"""Input bytes read plus bytes produced for them (dead letters, forwards) per transaction."""


@dataclass(slots=True)
class InputBudget:
    """One transaction's allowance; ``start`` it, ``take`` per record, ask ``spent``."""

    time_s: float = INPUT_TIME_BUDGET_S
    bytes: int = INPUT_BYTE_BUDGET
    started: float = 0.0
    used_bytes: int = 0
    taken: int = 0
    limit: int = 1

    @classmethod
    def for_timeout(cls, transaction_timeout_s: float) -> InputBudget:
        return cls(time_s=min(INPUT_TIME_BUDGET_S, transaction_timeout_s / 10))

    def start(self, now: float, limit: int) -> None:
        self.started = now
        self.used_bytes = 0
        self.taken = 0
        self.limit = limit

    def spent(self, now: float) -> bool:
        """True once the next record must wait for the next transaction. The first record is
        always taken, so every transaction makes progress."""
        if self.taken == 0:
            return False
        return (
            self.taken >= self.limit
            or self.used_bytes >= self.bytes
            or now - self.started >= self.time_s
        )

    def take(self, size: int) -> None:
        self.taken += 1
        self.used_bytes += size

    def produced(self, size: int) -> None:
        self.used_bytes += size


@dataclass(slots=True)
class RecordLimit:
    """Records per transaction: halved after every transaction that failed, down to one (the
    offending record alone), and doubled back after every one that committed."""

    ceiling: int
    current: int = field(default=0)

    def __post_init__(self) -> None:
        self.current = self.current or self.ceiling

    def failed(self) -> None:
        self.current = max(1, self.current // 2)

    def committed(self) -> None:
        self.current = min(self.ceiling, self.current * 2)

    @property
    def alone(self) -> bool:
        """The transaction carries one record: it failed alone before, or is about to."""
        return self.current == 1
