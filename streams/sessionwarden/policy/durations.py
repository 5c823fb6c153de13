"""Durations: policy-file text ("500ms", "90s", "1.5h", "1h30m", bare seconds) and milliseconds."""

from __future__ import annotations

import math
import re

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_UNITS = {"ms": 0.001, "s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")
_WHOLE = re.compile(rf"(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+")
_FORMAT_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value`` ("500ms", "90s", "1.5h", "1h30m" or a bare number of seconds).

    Raises ValueError unless the result is finite and strictly positive.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration such as '15m' or seconds, got {_show(value)}")
    try:
        seconds = _parse_text(value) if isinstance(value, str) else float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"must be a finite duration, got {_show(value)}")
    if seconds <= 0:
        raise ValueError(f"must be a positive duration, got {_show(value)}")
    return seconds


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_text(text: str) -> float:
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    if body[:1] in ("+", "-"):
        body = body[1:].lstrip()
    if re.fullmatch(_NUMBER, body):
        raise ValueError(f"{_show(text)} has no unit (add ms, s, m, h or d, e.g. '15m')")
    if not body or not _WHOLE.fullmatch(body):
        raise ValueError(
            f"{_show(text)} is not a duration (a number with a unit ms, s, m, h or d, e.g. '15m')"
        )
    return sign * sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(body))


def millis(seconds: float) -> int:
    """Whole milliseconds (the wire's and the record ids' unit) in ``seconds``, rounded."""
    return round(seconds * 1000)


def format_duration(seconds: float) -> str:
    """Compact text for ``seconds``: "15m", "12h", "1h30m", "500ms"."""
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    ms = millis(seconds)
    if ms == 0:
        return "0s" if seconds == 0 else f"{seconds * 1000:g}ms"
    parts: list[str] = []
    units = _FORMAT_UNITS if ms >= 2 * 86_400_000 else _FORMAT_UNITS[1:]
    for unit, size in units:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
