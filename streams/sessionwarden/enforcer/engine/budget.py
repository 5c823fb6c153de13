"""How much input one transaction may take: a time and a byte budget, and a record limit that
halves while transactions fail. Pure: the clock is passed in.

A transaction stops taking records from the consumed batch once its input work (decoding,
applying, dead-lettering, forwarding) has used ``time_s``, or it has taken ``input_bytes`` of
records or produced ``output_bytes`` for them (dead letters, forwards: what its commit must
flush), or its applied records made ``output_records`` revocations, audit events and changelog
records; the rest of the batch is read again by the next transaction. So a flood of
records that are slow to reject, large to dead-letter or wide in what they change only slows
the input down: every transaction still ends well short of the transaction timeout and of the
producer's queue, and fires what is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INPUT_TIME_BUDGET_S = 0.1
"""Input work per transaction; at most a tenth of the transaction timeout (see ``for_timeout``)."""
INPUT_BYTE_BUDGET = 64 * 1024 * 1024
"""Input record bytes taken per transaction (a thousand records of the 64 KiB limit)."""
OUTPUT_BYTE_BUDGET = 8 * 1024 * 1024
"""Bytes produced for the input per transaction (dead letters, forwards)."""
OUTPUT_RECORD_BUDGET = 50_000
"""Records the applied input made per transaction (revocations, audit events, changelog
records). Counted after every record, so a record that made many is charged them at once and
the next waits for the next transaction. Over twice what a full batch of the widest one-session
events makes (5,000 logouts: revocation, audit, session and user records), a tenth of the
producer's queue (queue.buffering.max.messages, 500,000), and a hundred times one record's
largest fan-out (a role change ending ``max_sessions_per_user`` sessions, at most 1,000)."""


CHECK_EVERY = 8
"""Records between checks of the time and byte budgets (a check costs more than a valid
record's other work; eight hostile records are a few milliseconds and half a MiB)."""


@dataclass(frozen=True, slots=True)
class InputBudget:
    """One transaction's allowance of input work."""

    time_s: float = INPUT_TIME_BUDGET_S
    input_bytes: int = INPUT_BYTE_BUDGET
    output_bytes: int = OUTPUT_BYTE_BUDGET
    output_records: int = OUTPUT_RECORD_BUDGET

    @classmethod
    def for_timeout(cls, transaction_timeout_s: float) -> InputBudget:
        return cls(time_s=min(INPUT_TIME_BUDGET_S, transaction_timeout_s / 10))

    def spent(self, elapsed_s: float, taken_bytes: int, produced_bytes: int) -> bool:
        """True once the records after these must wait for the next transaction."""
        return (
            elapsed_s >= self.time_s
            or taken_bytes >= self.input_bytes
            or produced_bytes >= self.output_bytes
        )

    def records_spent(self, produced_records: int) -> bool:
        """True once the records the applied input made fill the transaction (checked after
        every record: a counter comparison, no clock)."""
        return produced_records >= self.output_records


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
