"""PolicyError and how problems are reported: "location: message", one line each."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from sessionwarden.contracts.validation import error_lines
from sessionwarden.errors import ConfigError
from sessionwarden.policy.models import KNOWN_KEYS

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")


class PolicyError(ConfigError):
    """A policy that cannot be used; ``errors`` holds every problem as "location: message"."""

    def __init__(self, errors: Iterable[str], source: str = "<string>") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(self.errors, source)

    def __str__(self) -> str:
        return "\n".join(self.errors)


def loc(parts: Iterable[str | int]) -> str:
    """A TOML-style location: ``user_types."odd key".idle``, ``high_risk_operations[0]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
        text = f"{text}.{key}" if text else key
    return text


def pydantic_errors(exc: ValidationError) -> list[str]:
    return error_lines(exc, root="<policy>", where=loc, what=_message)


def _message(err: ErrorDetails) -> str:
    if err["type"] == "missing":
        return "required"
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][-1]), KNOWN_KEYS, n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    return err["msg"][:1].lower() + err["msg"][1:]


def toml_error(message: str) -> str:
    match = _TOML_POSITION.match(message)
    if match is None:
        return f"toml: {message}"
    what, line, column = match.groups()
    return f"line {line}, column {column}: invalid TOML ({what[:1].lower() + what[1:]})"
