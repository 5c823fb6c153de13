"""When may a deadline fire? The firing-horizon rule, on broker time. Pure: no Kafka.

A deadline ``d`` of partition ``p`` fires only once ``p`` is known to be read through broker
time ``d + budget`` (``budget`` is the producer-delay budget), by one of two proofs:

- the largest broker append time read on ``p`` is at least ``d + budget + grace``: a backlog
  is being read and has got that far (``grace`` absorbs append-time jitter between brokers);
- ``p`` was read up to its last stable offset as probed at wall time ``T >= d + budget``:
  every record appended before ``T`` has been applied. A probe that was not answered, or
  answered with no valid offset, proves nothing (the deadline waits: late, never early).

Producer clocks (``occurred_at``) play no part, so a future-stamped event cannot move it.
Records without a broker append time (a topic left on CreateTime) only count through probes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionwarden.freshness import reached

NEVER = float("-inf")


def received_time(timestamp: tuple[int, int], log_append_type: int) -> float | None:
    """The broker append time of a record in seconds, or None when it carries none."""
    kind, millis = timestamp
    return millis / 1000.0 if kind == log_append_type else None


def firing_horizon(now: float, read_through: float, budget: float) -> float:
    """The latest deadline that may fire, given how far (broker time) input is read."""
    return min(now, read_through - budget)


@dataclass
class PartitionClock:
    """How far one input partition is known to be read, in broker time."""

    grace: float
    max_append: float = NEVER  # largest broker append time applied
    proven_at: float = NEVER  # wall time of the latest probe read past
    probe: tuple[float, int] | None = None  # (wall time, last stable offset) not yet read to
    _saved: tuple[float, float] = (NEVER, NEVER)

    def observe(self, append_time: float | None) -> None:
        if append_time is not None and append_time > self.max_append:
            self.max_append = append_time

    def probed(self, taken: float, end: int, read_to: int) -> None:
        """A last-stable-offset probe taken at ``taken``; ``read_to`` is the next offset to read.
        An invalid end (negative: a frozen broker's OFFSET_INVALID) proves nothing and is not
        kept as pending either: kept, it would block every later probe of the partition."""
        if end < 0:
            return
        if reached(end, read_to):
            self.proven_at = max(self.proven_at, taken)
        elif self.probe is None or taken > self.probe[0]:
            self.probe = (taken, end)

    def advance(self, read_to: int) -> None:
        """The consumer has read up to ``read_to``: a pending probe may now be proven."""
        if self.probe is not None and reached(self.probe[1], read_to):
            self.proven_at = max(self.proven_at, self.probe[0])
            self.probe = None

    def read_through(self) -> float:
        return max(self.max_append - self.grace, self.proven_at)

    def horizon(self, now: float, budget: float) -> float:
        return firing_horizon(now, self.read_through(), budget)

    def needs_probe(self, deadline: float, budget: float) -> bool:
        return self.probe is None and self.read_through() - budget < deadline

    # A batch's reads are undone when it aborts: so is what they proved.
    def begin(self) -> None:
        self._saved = (self.max_append, self.proven_at)

    def abort(self) -> None:
        self.max_append, self.proven_at = self._saved
        self.probe = None
