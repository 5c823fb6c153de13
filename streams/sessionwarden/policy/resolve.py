"""Resolution: the effective timeouts of every (user type, risk profile) pair, and the
cross-field checks that refuse any combination allowing an indefinite session."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

from pydantic import ValidationError

from sessionwarden.policy.durations import format_duration
from sessionwarden.policy.errors import loc
from sessionwarden.policy.models import (
    DEFAULT_HARD_CAP,
    DURATION,
    MAX_HARD_CAP,
    PolicyDocument,
    TimeoutDefaults,
    TimeoutOverride,
)

_T = TypeVar("_T")


class Resolved(NamedTuple):
    idle: float
    idle_from: str
    absolute: float
    absolute_from: str


class Layout(NamedTuple):
    hard_cap: float | None
    defaults: TimeoutDefaults | None
    user_types: Mapping[str, TimeoutOverride]
    risk_profiles: Mapping[str, TimeoutOverride]


def _stricter(default: float, candidates: Iterable[tuple[str, float | None]]) -> tuple[float, str]:
    chosen = [(value, where) for where, value in candidates if value is not None]
    return min(chosen, key=lambda pair: pair[0]) if chosen else (default, "defaults")


def resolve_all(
    defaults: TimeoutDefaults, layout: Layout
) -> Iterator[tuple[str | None, str | None, Resolved]]:
    """Every (user type, risk profile) pair, None standing for an unlisted one."""
    user_types, risk_profiles = layout.user_types, layout.risk_profiles
    for user_type in [None, *user_types]:
        for risk_profile in [None, *risk_profiles]:
            rules: list[tuple[str, TimeoutOverride]] = []
            if user_type is not None:
                rules.append((loc(("user_types", user_type)), user_types[user_type]))
            if risk_profile is not None:
                rules.append((loc(("risk_profiles", risk_profile)), risk_profiles[risk_profile]))
            idle = _stricter(defaults.idle, ((where, rule.idle) for where, rule in rules))
            absolute = _stricter(defaults.absolute, ((w, rule.absolute) for w, rule in rules))
            yield user_type, risk_profile, Resolved(idle[0], idle[1], absolute[0], absolute[1])


def semantic_errors(layout: Layout) -> list[str]:
    """Timeout rules that validate field by field but together allow an indefinite session."""
    rules: list[tuple[str, TimeoutDefaults | TimeoutOverride]] = []
    rules += [("defaults", layout.defaults)] if layout.defaults is not None else []
    rules += [(loc(("user_types", key)), rule) for key, rule in layout.user_types.items()]
    rules += [(loc(("risk_profiles", key)), rule) for key, rule in layout.risk_profiles.items()]
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


def _combination_errors(defaults: TimeoutDefaults, layout: Layout) -> list[str]:
    """Idle above absolute where the two come from different rules (one line per pair)."""
    errors: list[str] = []
    seen: set[tuple[str, str]] = set()
    for user_type, risk_profile, found in resolve_all(defaults, layout):
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


def _attempt(check: Callable[[Any], _T], value: Any) -> _T | None:
    try:
        return check(value)
    except ValidationError:
        return None


def partial_layout(raw: Mapping[str, Any]) -> Layout:
    """The parts of an invalid document that validate on their own, for the cross-field checks."""

    def rules(section: str) -> dict[str, TimeoutOverride]:
        given = raw.get(section)
        items = given.items() if isinstance(given, dict) else ()
        checked = {key: _attempt(TimeoutOverride.model_validate, value) for key, value in items}
        return {key: rule for key, rule in checked.items() if rule is not None}

    return Layout(
        hard_cap=_attempt(DURATION.validate_python, raw.get("hard_cap_absolute", DEFAULT_HARD_CAP)),
        defaults=_attempt(TimeoutDefaults.model_validate, raw.get("defaults")),
        user_types=rules("user_types"),
        risk_profiles=rules("risk_profiles"),
    )


def layout_of(doc: PolicyDocument) -> Layout:
    return Layout(doc.hard_cap_absolute, doc.defaults, doc.user_types, doc.risk_profiles)
