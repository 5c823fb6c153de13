"""Probe-then-catch-up: what counts as read up to the end, and what never does."""

from __future__ import annotations

from sessionwarden.freshness import caught_up, reached

INVALID = -1001  # OFFSET_INVALID: what a frozen broker's list_offsets answers


def test_an_empty_partition_counts_as_reached() -> None:
    assert reached(end=0, read_to=INVALID)
    assert reached(end=7, read_to=INVALID, low=7)  # every record deleted by retention


def test_reached_only_once_read_up_to_the_end() -> None:
    assert (False, True, True) == (reached(5, 4), reached(5, 5), reached(5, 6))


def test_an_invalid_answer_is_never_reached() -> None:
    """-1001 is "unknown", not "an empty partition": counting it as reached made a listener
    call itself current while the broker was frozen."""
    assert not reached(end=INVALID, read_to=INVALID)
    assert not reached(end=INVALID, read_to=10)
    assert not reached(end=10, read_to=10, low=INVALID)
    assert not reached(end=5, read_to=10, low=7), "an end below the start is no answer"
    assert not caught_up({0: (0, 4), 1: (INVALID, INVALID)}, {0: 4, 1: 0})
