"""Probe, then catch up: the freshness rule of every reader that must know it is current.

Note the time, ask the broker where each partition ends (read_committed: the last stable offset;
sessionwarden/kafka/offsets.py asks), and once the reader has read up to those ends, everything
appended before that time has been applied. The revocation listener uses it for its staleness, the
enforcer before a deadline fires (sessionwarden/enforcer/engine/horizon.py). Pure: no Kafka.

An answer that is no offset (negative: OFFSET_INVALID, -1001, is what a frozen broker's
``list_offsets`` returns) is unknown, and unknown is never "read up to the end".
"""

from __future__ import annotations


def reached(end: int, read_to: int, low: int = 0) -> bool:
    """Read up to ``end`` (the next offset to read is ``read_to``); an empty partition counts,
    an invalid answer (a negative offset, an end before the start) never does."""
    if end < 0 or low < 0 or end < low:
        return False
    return end == low or read_to >= end


def caught_up(ends: dict[int, tuple[int, int]], positions: dict[int, int]) -> bool:
    """Read up to the end offsets on every partition (an empty partition counts)."""
    return all(reached(end, positions.get(p, -1), low) for p, (low, end) in ends.items())
