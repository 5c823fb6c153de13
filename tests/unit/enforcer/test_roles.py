"""Per-role change times: which grants and removals apply, and how long times are kept."""

from __future__ import annotations

from sessionwarden.enforcer.engine.roles import apply_role_times, removed_after
from sessionwarden.enforcer.engine.sessions import MAX_ROLE_TIMES


def test_only_changes_newer_than_the_roles_last_change_apply() -> None:
    """Event time decides: an older grant after a newer removal is dropped, per role."""
    times, removed, granted = apply_role_times(None, [], ["editor"], 20.0, 1000.0)
    assert (frozenset({"editor"}), []) == (removed, granted)
    times, removed, granted = apply_role_times(times, ["editor", "admin"], [], 10.0, 1000.0)
    assert (frozenset(), ["admin"]) == (removed, granted)
    assert {"editor": (20.0, False), "admin": (10.0, True)} == times


def test_a_role_granted_and_removed_by_one_change_is_removed() -> None:
    """The safe reading of a contradictory change."""
    times, removed, granted = apply_role_times(None, ["editor"], ["editor"], 5.0, 1000.0)
    assert (frozenset({"editor"}), [], {"editor": (5.0, False)}) == (removed, granted, times)


def test_times_older_than_the_longest_session_are_dropped() -> None:
    """No session outlives the longest absolute timeout, so older times decide nothing."""
    times, _, _ = apply_role_times(None, [], ["old"], 0.0, 100.0)
    times, _, _ = apply_role_times(times, ["new"], [], 150.0, 100.0)
    assert {"new": (150.0, True)} == times


def test_a_flood_of_role_names_is_bounded() -> None:
    """Hostile input cannot grow a user's record without bound: the oldest times go first."""
    times = None
    for i in range(MAX_ROLE_TIMES + 10):
        times, _, _ = apply_role_times(times, [f"r{i}"], [], float(i), 1e9)
    assert times is not None and MAX_ROLE_TIMES == len(times)
    assert "r0" not in times and f"r{MAX_ROLE_TIMES + 9}" in times


def test_removed_after_names_only_later_removals() -> None:
    """A login at 10 loses the roles removed after 10, not those removed before or re-granted."""
    times = {"a": (20.0, False), "b": (5.0, False), "c": (30.0, True)}
    assert {"a": (20.0, False)} == removed_after(times, ["a", "b", "c", "d"], 10.0)
