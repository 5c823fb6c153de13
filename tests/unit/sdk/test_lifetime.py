"""The service's own check of a session's age, the other half of the listener's bound."""

from __future__ import annotations

import math

import pytest

from sessionwarden.sdk.lifetime import lifetime_left, within_lifetime

LIFE = 86_400.0
NOW = 1_800_000_000.0


def test_a_session_is_served_until_max_lifetime_after_its_issue_and_not_after() -> None:
    assert within_lifetime(NOW - LIFE + 1, LIFE, now=NOW)
    assert 1.0 == lifetime_left(NOW - LIFE + 1, LIFE, now=NOW)
    assert not within_lifetime(NOW - LIFE, LIFE, now=NOW)
    assert not within_lifetime(NOW - 10 * LIFE, LIFE, now=NOW)


def test_an_issue_time_in_the_future_is_tolerated_only_within_the_skew() -> None:
    """A later issue time would stretch the session past the listener's memory."""
    assert within_lifetime(NOW + 5, LIFE, now=NOW, skew_s=30)
    assert not within_lifetime(NOW + 31, LIFE, now=NOW, skew_s=30)
    assert not within_lifetime(NOW + 1, LIFE, now=NOW, skew_s=0)


@pytest.mark.parametrize("issued_at", [math.nan, math.inf, -math.inf])
def test_an_issue_time_that_is_not_finite_is_never_served(issued_at: float) -> None:
    assert not within_lifetime(issued_at, LIFE, now=NOW)


@pytest.mark.parametrize("life", [0.0, -1.0, math.nan])
def test_a_lifetime_that_is_not_positive_is_refused(life: float) -> None:
    with pytest.raises(ValueError):
        within_lifetime(NOW, life, now=NOW)
