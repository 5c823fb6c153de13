"""The seeded check's event times (bench/peers_check.py): the enforcer judges an event on the
earlier of its ``occurred_at`` and its record's broker append time (whole milliseconds), the
peers on ``occurred_at`` alone; stamped at a whole millisecond, an event means the same instant
to all three."""

from __future__ import annotations

import math
import random

from bench.peers_check import seeded_run, whole_ms
from sessionwarden.testing.events import iso, parse_ts


def test_an_event_appended_in_the_millisecond_of_its_stamp_is_judged_at_its_stamp() -> None:
    rng = random.Random(7)
    t0 = 1_796_671_663.0
    steps, _ = seeded_run()
    for dt, *_ in steps:
        planned = t0 + rng.uniform(0, 1) + dt
        stamped = whole_ms(planned)
        assert planned - 0.001 < stamped <= planned
        for lag in (0.0, 0.0002, 0.0009, 0.02):  # appended this long after it was made
            appended = math.floor((planned + lag) * 1000) / 1000  # the broker's whole ms
            assert min(stamped, appended) == stamped  # the enforcer's effective time
        wire = parse_ts(iso(stamped))  # as every system reads it back
        assert round(wire * 1000) == round(stamped * 1000) == math.floor(planned * 1000)


def test_a_stamp_between_milliseconds_would_be_judged_earlier_by_the_enforcer_alone() -> None:
    """What the whole-millisecond stamp prevents: 0.7 ms into the millisecond it is appended in,
    the enforcer's time is the append time, a millisecond off the peers' once rounded."""
    planned = 1_796_671_663.7747
    appended = math.floor(planned * 1000) / 1000
    assert min(planned, appended) == appended != planned
    assert round(appended * 1000) != round(planned * 1000)
