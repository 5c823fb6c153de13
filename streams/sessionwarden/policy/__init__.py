"""Session timeout policy: the TOML model, its validation and the per-event resolution.

A policy is rejected unless every session it can produce has a finite, positive idle timeout
no longer than a finite absolute timeout, itself no longer than the policy's hard cap.
Durations (durations.py), the models (models.py), error reporting (errors.py) and the
resolution and cross-field checks (resolve.py) live beside this module; it holds the
validated Policy and the ways to load one.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources

from pydantic import ValidationError

from sessionwarden.policy.durations import DAY, HOUR, MINUTE, format_duration, parse_duration
from sessionwarden.policy.errors import PolicyError, pydantic_errors, toml_error
from sessionwarden.policy.models import (
    DEFAULT_HARD_CAP,
    DEFAULT_MAX_SESSIONS_PER_USER,
    MAX_HARD_CAP,
    MAX_SESSIONS_PER_USER,
    AnomalySettings,
    ConcurrentSessions,
    Duration,
    Escalation,
    HighRiskRule,
    PolicyDocument,
    RepeatedExpirations,
    RoleSpec,
    TimeoutDefaults,
    TimeoutOverride,
)
from sessionwarden.policy.resolve import layout_of, partial_layout, resolve_all, semantic_errors

__all__ = [
    "DAY",
    "DEFAULT_HARD_CAP",
    "DEFAULT_MAX_SESSIONS_PER_USER",
    "HIGH_RISK_CACHE_SIZE",
    "HOUR",
    "MAX_HARD_CAP",
    "MAX_SESSIONS_PER_USER",
    "MINUTE",
    "AnomalySettings",
    "ConcurrentSessions",
    "Duration",
    "Escalation",
    "HighRiskRule",
    "Policy",
    "PolicyDocument",
    "PolicyError",
    "RepeatedExpirations",
    "RoleSpec",
    "TimeoutDefaults",
    "TimeoutOverride",
    "Timeouts",
    "default_policy",
    "format_duration",
    "load_policy",
    "parse_duration",
    "parse_policy",
]

HIGH_RISK_CACHE_SIZE = 10_000
"""Actions whose high-risk rule is remembered; past it, hostile input is matched, not cached."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    idle: float
    absolute: float


class Policy:
    """A validated policy with lookup tables for the per-event questions.

    Construction runs the cross-field checks, so no Policy can hold an indefinite timeout.
    """

    __slots__ = (
        "_privileges",
        "_rule_cache",
        "_rules",
        "_sensitive",
        "_table",
        "anomaly",
        "clock_skew_tolerance",
        "document",
        "hard_cap_absolute",
        "high_risk_operations",
        "max_absolute",
        "max_sessions_per_user",
        "name",
        "risk_profiles",
        "roles",
        "user_types",
        "version",
    )

    def __init__(self, document: PolicyDocument, source: str = "<document>") -> None:
        errors = semantic_errors(layout_of(document))
        if errors:
            raise PolicyError(errors, source)
        self.document = document
        self.name = document.name
        self.version = _content_version(document)
        self.hard_cap_absolute = document.hard_cap_absolute
        self.clock_skew_tolerance = document.clock_skew_tolerance
        self.max_sessions_per_user = document.max_sessions_per_user
        self.anomaly = document.anomaly
        self.user_types = tuple(document.user_types)
        self.risk_profiles = tuple(document.risk_profiles)
        self.roles: Mapping[str, RoleSpec] = document.roles
        self.high_risk_operations = document.high_risk_operations
        self._table: dict[str | None, dict[str | None, Timeouts]] = {}
        for user_type, risk_profile, found in resolve_all(document.defaults, layout_of(document)):
            row = self._table.setdefault(user_type, {})
            row[risk_profile] = Timeouts(idle=found.idle, absolute=found.absolute)
        self.max_absolute = max(t.absolute for row in self._table.values() for t in row.values())
        self._privileges = {name: role.privilege for name, role in document.roles.items()}
        self._sensitive = frozenset(name for name, role in document.roles.items() if role.sensitive)
        self._rules = tuple(
            (re.compile(fnmatch.translate(rule.pattern)).match, rule)
            for rule in document.high_risk_operations
        )
        self._rule_cache: dict[str, HighRiskRule | None] = {}

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

    def known_roles(self, roles: Iterable[str]) -> frozenset[str]:
        """The roles among ``roles`` the catalog names: the only ones with a privilege level
        or sensitivity (what a user's roles are kept for)."""
        privileges = self._privileges
        return frozenset(role for role in roles if role in privileges)

    def sensitive_roles(self, roles: Iterable[str]) -> list[str]:
        """The roles marked sensitive, in input order, each once."""
        return [role for role in dict.fromkeys(roles) if role in self._sensitive]

    def high_risk_rule(self, action: str) -> HighRiskRule | None:
        """The first rule (file order) whose pattern matches ``action``."""
        if not self._rules:
            return None
        try:
            return self._rule_cache[action]
        except KeyError:
            rule = self._first_rule(action)
            if len(self._rule_cache) < HIGH_RISK_CACHE_SIZE:
                self._rule_cache[action] = rule
            return rule

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
        raise PolicyError([toml_error(str(exc))], source) from None
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        errors = pydantic_errors(exc) + semantic_errors(partial_layout(raw))
        raise PolicyError(errors, source) from None
    return Policy(document, source)


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
    """The policy shipped with the package (sessionwarden/policy/shipped/default.toml)."""
    text = (
        resources.files("sessionwarden.policy").joinpath("shipped/default.toml").read_text("utf-8")
    )
    return parse_policy(text, "sessionwarden/policy/shipped/default.toml")
