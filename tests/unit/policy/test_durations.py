"""Durations in a policy: what is accepted, what is refused, how they are shown."""

from __future__ import annotations

import math

import pytest

from sessionwarden.policy import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        (" 15 m ", 900.0),
        (".5s", 0.5),
        (30, 30.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration_accepts(text: str | int | float, seconds: float) -> None:
    """Policy authors write durations in these forms; each must mean the stated seconds."""
    assert seconds == parse_duration(text)


@pytest.mark.parametrize(
    "text",
    ["0s", "0", 0, -5, "-5m", "5M", "5 minutes", "", "m", "1e3s", "nan", "inf", "15m garbage"],
)
def test_parse_duration_rejects(text: str | int | float) -> None:
    """Zero, negative, unitless or garbage durations would make a timeout meaningless."""
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, True])
def test_parse_duration_rejects_non_finite_and_booleans(value: float) -> None:
    """A non-finite timeout is an indefinite session."""
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (900.0, "15m"),
        (43200.0, "12h"),
        (86400.0, "24h"),
        (5400.0, "1h30m"),
        (0.5, "500ms"),
        (30 * 86400.0, "30d"),
        (90.0, "1m30s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Reports and error messages show durations the way policies write them."""
    assert text == format_duration(seconds)
