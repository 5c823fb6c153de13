"""One rendering of pydantic validation errors as "location: message" lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def dotted(loc: Sequence[int | str]) -> str:
    """``("a", 0, "b")`` -> ``"a.0.b"``."""
    return ".".join(str(part) for part in loc)


def error_lines(
    exc: ValidationError,
    root: str = "",
    where: Callable[[Sequence[int | str]], str] = dotted,
    what: Callable[[ErrorDetails], str] = lambda err: err["msg"],
) -> list[str]:
    """One "location: message" line per error; ``root`` names an error of the whole input."""
    return [f"{where(err['loc']) or root}: {what(err)}" for err in exc.errors()]
