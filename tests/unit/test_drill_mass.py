"""The drill's mass-revocation line: the commit and every layer's refusal judged against their
targets, and a layer that did not refuse the whole sample never counted as met."""

from __future__ import annotations

import time

from sessionwarden.audit.drill.mass import MassRevocation, document, first_refusals, line


def test_the_line_gives_the_commit_and_each_layers_slowest_refusal() -> None:
    """What an operator reads in drill.txt: the two targets and each layer's figure."""
    result = MassRevocation(
        10_000, 10_000, 0.42, 20, {"API": 0.001, "database": 0.12, "gateway": 0.2}
    )

    assert (
        "mass revocation: 10,000 of 10,000 sessions revoked, committed 0.42 s after the command "
        "(target <= 5 s); refused after the commit, slowest of 20 sampled: API 0.001 s, "
        "database 0.120 s, gateway 0.200 s (target <= 1 s each): met"
    ) == line(result)
    assert document(result)["met"] is True


def test_a_slow_commit_or_a_layer_that_never_refused_is_missed() -> None:
    """13.8 s to commit misses; so does a layer with a sampled session still served."""
    slow = MassRevocation(100_000, 100_000, 13.8, 20, {"API": 0.0})
    unrefused = MassRevocation(100, 100, 0.3, 20, {"API": 0.0, "database": None})
    unanswered = MassRevocation(100, 0, None, 20, {})

    assert [False, False, False] == [r.met for r in (slow, unrefused, unanswered)]
    assert line(unrefused).endswith("database not refused in time (target <= 1 s each): MISSED")
    assert "no commit answered" in line(unanswered)


def test_first_refusals_waits_for_the_slowest_session_and_drops_a_layer_that_never_refuses() -> (
    None
):
    """Each layer is timed until its last sampled session is refused, within the timeout."""
    start = time.monotonic()

    found = first_refusals(
        {
            "API": lambda sid: True,
            "gateway": lambda sid: sid == "a" or time.monotonic() - start > 0.05,
            "database": lambda sid: False,
        },
        ["a", "b"],
        timeout=0.2,
    )

    assert ["API", "gateway"] == sorted(found)
    assert found["API"] < 0.05 <= found["gateway"]
