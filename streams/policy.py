"""Session timeout policy: the TOML model, its validation and the per-event resolution.

A policy is rejected unless every session it can produce has a finite, positive idle timeout
no longer than a finite absolute timeout, itself no longer than the policy's hard cap.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from schemas.errors import ConfigError

_T = TypeVar("_T")

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR
DEFAULT_HARD_CAP = 30 * DAY
MAX_HARD_CAP = 366 * DAY
HIGH_RISK_CACHE_SIZE = 4096

_UNITS = {"ms": 0.001, "s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")
_WHOLE = re.compile(rf"(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+")
_FORMAT_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
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


def format_duration(seconds: float) -> str:
    """Compact text for ``seconds``: "15m", "12h", "1h30m", "500ms"."""
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s" if seconds == 0 else f"{seconds * 1000:g}ms"
    parts: list[str] = []
    units = _FORMAT_UNITS if millis >= 2 * 86_400_000 else _FORMAT_UNITS[1:]
    for unit, size in units:
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _duration_field(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


Duration = Annotated[float, PlainValidator(_duration_field)]
Label = Annotated[str, Field(strict=True, min_length=1)]
Count = Annotated[int, Field(strict=True, ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutDefaults(_Strict):
    idle: Duration
    absolute: Duration


class TimeoutOverride(_Strict):
    idle: Duration | None = None
    absolute: Duration | None = None


class RoleSpec(_Strict):
    privilege: Annotated[int, Field(strict=True, ge=0, le=1000)]
    sensitive: Annotated[bool, Field(strict=True)] = False


class HighRiskRule(_Strict):
    pattern: Label
    max_auth_age: Duration
    idle: Duration | None = None


class RepeatedExpirations(_Strict):
    count: Count = 3
    window: Duration = HOUR


class Escalation(_Strict):
    min_levels: Count = 2
    window: Duration = 10 * MINUTE
    high_risk_within: Duration = 5 * MINUTE


class ConcurrentSessions(_Strict):
    max: Count = 5


class AnomalySettings(_Strict):
    repeated_expirations: RepeatedExpirations = Field(default_factory=RepeatedExpirations)
    escalation: Escalation = Field(default_factory=Escalation)
    concurrent_sessions: ConcurrentSessions = Field(default_factory=ConcurrentSessions)
    cooldown: Duration = 15 * MINUTE


class PolicyDocument(_Strict):
    name: Label
    hard_cap_absolute: Duration = DEFAULT_HARD_CAP
    clock_skew_tolerance: Duration = 2 * MINUTE
    defaults: TimeoutDefaults
    user_types: dict[str, TimeoutOverride] = Field(default_factory=dict)
    risk_profiles: dict[str, TimeoutOverride] = Field(default_factory=dict)
    roles: dict[str, RoleSpec] = Field(default_factory=dict)
    high_risk_operations: tuple[HighRiskRule, ...] = ()
    anomaly: AnomalySettings = Field(default_factory=AnomalySettings)


_MODELS: tuple[type[BaseModel], ...] = (
    PolicyDocument,
    TimeoutDefaults,
    TimeoutOverride,
    RoleSpec,
    HighRiskRule,
    AnomalySettings,
    RepeatedExpirations,
    Escalation,
    ConcurrentSessions,
)
_KNOWN_KEYS = sorted({name for model in _MODELS for name in model.model_fields})
_DURATION: TypeAdapter[float] = TypeAdapter(Duration)


@dataclass(frozen=True, slots=True)
class Timeouts:
    idle: float
    absolute: float


class _Resolved(NamedTuple):
    idle: float
    idle_from: str
    absolute: float
    absolute_from: str


class _Layout(NamedTuple):
    hard_cap: float | None
    defaults: TimeoutDefaults | None
    user_types: Mapping[str, TimeoutOverride]
    risk_profiles: Mapping[str, TimeoutOverride]


def _stricter(default: float, candidates: Iterable[tuple[str, float | None]]) -> tuple[float, str]:
    chosen = [(value, where) for where, value in candidates if value is not None]
    return min(chosen, key=lambda pair: pair[0]) if chosen else (default, "defaults")


def _resolve_all(
    defaults: TimeoutDefaults, layout: _Layout
) -> Iterator[tuple[str | None, str | None, _Resolved]]:
    """Every (user type, risk profile) pair, None standing for an unlisted one."""
    user_types, risk_profiles = layout.user_types, layout.risk_profiles
    for user_type in [None, *user_types]:
        for risk_profile in [None, *risk_profiles]:
            rules: list[tuple[str, TimeoutOverride]] = []
            if user_type is not None:
                rules.append((_loc(("user_types", user_type)), user_types[user_type]))
            if risk_profile is not None:
                rules.append((_loc(("risk_profiles", risk_profile)), risk_profiles[risk_profile]))
            idle = _stricter(defaults.idle, ((where, rule.idle) for where, rule in rules))
            absolute = _stricter(defaults.absolute, ((w, rule.absolute) for w, rule in rules))
            yield user_type, risk_profile, _Resolved(idle[0], idle[1], absolute[0], absolute[1])


def _semantic_errors(layout: _Layout) -> list[str]:
    """Timeout rules that validate field by field but together allow an indefinite session."""
    rules: list[tuple[str, TimeoutDefaults | TimeoutOverride]] = []
    rules += [("defaults", layout.defaults)] if layout.defaults is not None else []
    rules += [(_loc(("user_types", key)), rule) for key, rule in layout.user_types.items()]
    rules += [(_loc(("risk_profiles", key)), rule) for key, rule in layout.risk_profiles.items()]
    errors: list[str] = []
    if layout.hard_cap is not None and layout.hard_cap > MAX_HARD_CAP:
        errors.append(f"hard_cap_absolute: must be <= {format_duration(MAX_HARD_CAP)}")
    for where, rule in rules:
        if rule.idle is not None and rule.absolute is not None and rule.idle > rule.absolute:
            errors.append(f"{where}.idle: must be <= absolute ({format_duration(rule.absolute)})")
        if layout.hard_cap is not None and (rule.absolute or 0.0) > layout.hard_cap:
            cap = format_duration(layout.hard_cap)
            errors.append(f"{where}.absolute: must be <= hard_cap_absolute ({cap})")
    if layout.defaults is not None:
        errors.extend(_combination_errors(layout.defaults, layout))
    return errors


def _combination_errors(defaults: TimeoutDefaults, layout: _Layout) -> list[str]:
    """Idle above absolute where the two come from different rules (one line per pair)."""
    errors: list[str] = []
    seen: set[tuple[str, str]] = set()
    for user_type, risk_profile, found in _resolve_all(defaults, layout):
        pair = (found.idle_from, found.absolute_from)
        if found.idle <= found.absolute or pair[0] == pair[1] or pair in seen:
            continue
        seen.add(pair)
        errors.append(
            f"{found.idle_from}.idle: must be <= absolute ({format_duration(found.absolute)})"
            f" from {found.absolute_from}.absolute, as combined for user type"
            f" {_label(user_type)} and risk profile {_label(risk_profile)}"
        )
    return errors


def _label(name: str | None) -> str:
    return "(default)" if name is None else repr(name)


def _loc(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
        text = f"{text}.{key}" if text else key
    return text


def _pydantic_errors(exc: ValidationError) -> list[str]:
    return [f"{_loc(err['loc']) or '<policy>'}: {_message(err)}" for err in exc.errors()]


def _message(err: ErrorDetails) -> str:
    if err["type"] == "missing":
        return "required"
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][-1]), _KNOWN_KEYS, n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    return err["msg"][:1].lower() + err["msg"][1:]


def _attempt(check: Callable[[Any], _T], value: Any) -> _T | None:
    try:
        return check(value)
    except ValidationError:
        return None


def _partial_layout(raw: Mapping[str, Any]) -> _Layout:
    """The parts of an invalid document that validate on their own, for the cross-field checks."""

    def rules(section: str) -> dict[str, TimeoutOverride]:
        given = raw.get(section)
        items = given.items() if isinstance(given, dict) else ()
        checked = {key: _attempt(TimeoutOverride.model_validate, value) for key, value in items}
        return {key: rule for key, rule in checked.items() if rule is not None}

    return _Layout(
        hard_cap=_attempt(
            _DURATION.validate_python, raw.get("hard_cap_absolute", DEFAULT_HARD_CAP)
        ),
        defaults=_attempt(TimeoutDefaults.model_validate, raw.get("defaults")),
        user_types=rules("user_types"),
        risk_profiles=rules("risk_profiles"),
    )


def _layout_of(doc: PolicyDocument) -> _Layout:
    return _Layout(doc.hard_cap_absolute, doc.defaults, doc.user_types, doc.risk_profiles)


class Policy:
    """A validated policy with lookup tables for the per-event questions.

    Construction runs the cross-field checks, so no Policy can hold an indefinite timeout.
    """

    __slots__ = (
        "_privileges",
        "_rule_for",
        "_rules",
        "_sensitive",
        "_table",
        "anomaly",
        "clock_skew_tolerance",
        "document",
        "hard_cap_absolute",
        "high_risk_operations",
        "max_absolute",
        "name",
        "risk_profiles",
        "roles",
        "user_types",
        "version",
    )

    def __init__(self, document: PolicyDocument, source: str = "<document>") -> None:
        errors = _semantic_errors(_layout_of(document))
        if errors:
            raise PolicyError(errors, source)
        self.document = document
        self.name = document.name
        self.version = _content_version(document)
        self.hard_cap_absolute = document.hard_cap_absolute
        self.clock_skew_tolerance = document.clock_skew_tolerance
        self.anomaly = document.anomaly
        self.user_types = tuple(document.user_types)
        self.risk_profiles = tuple(document.risk_profiles)
        self.roles: Mapping[str, RoleSpec] = document.roles
        self.high_risk_operations = document.high_risk_operations
        self._table: dict[str | None, dict[str | None, Timeouts]] = {}
        for user_type, risk_profile, found in _resolve_all(document.defaults, _layout_of(document)):
            row = self._table.setdefault(user_type, {})
            row[risk_profile] = Timeouts(idle=found.idle, absolute=found.absolute)
        self.max_absolute = max(t.absolute for row in self._table.values() for t in row.values())
        self._privileges = {name: role.privilege for name, role in document.roles.items()}
        self._sensitive = frozenset(name for name, role in document.roles.items() if role.sensitive)
        self._rules = tuple(
            (re.compile(fnmatch.translate(rule.pattern)).match, rule)
            for rule in document.high_risk_operations
        )
        self._rule_for = functools.lru_cache(maxsize=HIGH_RISK_CACHE_SIZE)(self._first_rule)

    def timeouts_for(self, user_type: str, risk_profile: str) -> Timeouts:
        """Effective timeouts; unlisted user types and risk profiles fall back to the defaults."""
        row = self._table.get(user_type)
        if row is None:
            row = self._table[None]
        found = row.get(risk_profile)
        return row[None] if found is None else found

    def effective_timeouts(self) -> Iterator[tuple[str | None, str | None, Timeouts]]:
        """Every listed (user type, risk profile) pair and its timeouts; None means unlisted."""
        for user_type, row in self._table.items():
            for risk_profile, timeouts in row.items():
                yield user_type, risk_profile, timeouts

    def privilege_of(self, roles: Iterable[str]) -> int:
        """Highest privilege among the known roles, 0 when none is known."""
        highest = 0
        for role in roles:
            level = self._privileges.get(role, 0)
            if level > highest:
                highest = level
        return highest

    def sensitive_roles(self, roles: Iterable[str]) -> list[str]:
        """The roles marked sensitive, in input order, each once."""
        return [role for role in dict.fromkeys(roles) if role in self._sensitive]

    def high_risk_rule(self, action: str) -> HighRiskRule | None:
        """The first rule (file order) whose pattern matches ``action``."""
        return self._rule_for(action) if self._rules else None

    def _first_rule(self, action: str) -> HighRiskRule | None:
        for matches, rule in self._rules:
            if matches(action):
                return rule
        return None

    def __repr__(self) -> str:
        return f"Policy(name={self.name!r}, version={self.version!r})"


def _content_version(document: PolicyDocument) -> str:
    canonical = json.dumps(
        document.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Validate the TOML ``text``; raises PolicyError listing every problem found."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([_toml_error(str(exc))], source) from None
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        errors = _pydantic_errors(exc) + _semantic_errors(_partial_layout(raw))
        raise PolicyError(errors, source) from None
    return Policy(document, source)


def _toml_error(message: str) -> str:
    match = _TOML_POSITION.match(message)
    if match is None:
        return f"toml: {message}"
    what, line, column = match.groups()
    return f"line {line}, column {column}: invalid TOML ({what[:1].lower() + what[1:]})"


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate the policy file at ``path``; raises PolicyError."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            text = handle.read().decode("utf-8")
    except FileNotFoundError:
        raise PolicyError([f"{source}: file not found"], source) from None
    except OSError as exc:
        raise PolicyError([f"{source}: cannot read ({exc.strerror or exc})"], source) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([f"{source}: not UTF-8 text ({exc.reason})"], source) from None
    return parse_policy(text, source)


@functools.lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The policy shipped with the package (streams/policies/default.toml)."""
    text = resources.files("streams").joinpath("policies/default.toml").read_text("utf-8")
    return parse_policy(text, "streams/policies/default.toml")
