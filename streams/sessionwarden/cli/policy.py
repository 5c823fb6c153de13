"""The `policy check` output: a policy's effective timeouts, high-risk rules and role catalog."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from sessionwarden.cli.options import Subcommands
from sessionwarden.policy import Policy, PolicyError, default_policy, format_duration, load_policy

DEFAULT_LABEL = "(default)"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces, with a rule under the headers."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    return [
        line(headers).rstrip(),
        line(["-" * width for width in widths]),
        *(line(row).rstrip() for row in rows),
    ]


def _effective_rows(policy: Policy) -> list[list[str]]:
    return [
        [
            _label(user_type),
            _label(risk_profile),
            format_duration(timeouts.idle),
            format_duration(timeouts.absolute),
        ]
        for user_type, risk_profile, timeouts in policy.effective_timeouts()
    ]


def shortest_idle(policy: Policy) -> tuple[float, str]:
    """The shortest idle timeout any session can run under, and where it comes from."""
    found = [
        (t.idle, f"{_label(user_type)} x {_label(risk_profile)}")
        for user_type, risk_profile, t in policy.effective_timeouts()
    ]
    found += [
        (rule.idle, f"high-risk {rule.pattern}")
        for rule in policy.high_risk_operations
        if rule.idle is not None
    ]
    return min(found, key=lambda item: item[0])


def _label(name: str | None) -> str:
    return DEFAULT_LABEL if name is None else name


def policy_warnings(policy: Policy) -> list[str]:
    """What is valid but risky in ``policy``."""
    warnings = []
    idle, where = shortest_idle(policy)
    if policy.clock_skew_tolerance > idle:
        warnings.append(
            f"warning: clock skew tolerance {format_duration(policy.clock_skew_tolerance)} exceeds"
            f" the shortest idle timeout {format_duration(idle)} ({where}): producer clocks"
            " allowed to be that far off can move such a session's idle deadline by more than"
            " its whole timeout; keep the tolerance below every idle timeout"
        )
    cap, alert = policy.max_sessions_per_user, policy.anomaly.concurrent_sessions.max
    if alert >= cap:
        warnings.append(
            f"warning: anomaly.concurrent_sessions.max {alert} is not below"
            f" max_sessions_per_user {cap}: no user can hold more than {cap} live sessions,"
            " so that alert never fires"
        )
    return warnings


def render_effective(policy: Policy) -> str:
    """A readable report of what ``policy`` enforces for every listed combination."""
    lines = [
        f"policy: {policy.name}",
        f"version: {policy.version}",
        f"hard cap (absolute): {format_duration(policy.hard_cap_absolute)}",
        f"longest effective absolute: {format_duration(policy.max_absolute)}",
        f"clock skew tolerance: {format_duration(policy.clock_skew_tolerance)}",
        f"live sessions per user: at most {policy.max_sessions_per_user}"
        " (a login beyond ends the oldest)",
        *policy_warnings(policy),
        "",
        "effective timeouts (stricter of user type and risk profile; unlisted use defaults)",
        *_table(["user type", "risk profile", "idle", "absolute"], _effective_rows(policy)),
        "",
        "high-risk operations (first match wins)",
    ]
    rules = [
        [
            rule.pattern,
            format_duration(rule.max_auth_age),
            "-" if rule.idle is None else format_duration(rule.idle),
        ]
        for rule in policy.high_risk_operations
    ]
    lines.extend(_table(["pattern", "max auth age", "idle"], rules) if rules else ["  (none)"])
    lines += ["", "roles"]
    roles = [
        [name, str(role.privilege), "yes" if role.sensitive else "no"]
        for name, role in policy.roles.items()
    ]
    lines.extend(_table(["role", "privilege", "sensitive"], roles) if roles else ["  (none)"])
    return "\n".join(lines) + "\n"


def run_policy_check(path: str | None, out: TextIO, err: TextIO) -> int:
    """Print the effective table for ``path`` (None: the shipped policy); 0 if valid, else 1."""
    try:
        policy = default_policy() if path is None else load_policy(path)
    except PolicyError as exc:
        err.write(f"policy invalid: {path if path is not None else exc.source}\n")
        for line in exc.errors:
            err.write(f"  {line}\n")
        return 1
    out.write(render_effective(policy))
    return 0


EXTRA = None


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    policy = sub.add_parser("policy", help="inspect a timeout policy")
    psub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate a policy and print its effective timeouts")
    check.add_argument("file", nargs="?", help="policy TOML (default: the shipped policy)")
    return policy


def run(args: argparse.Namespace) -> int:
    return run_policy_check(args.file, sys.stdout, sys.stderr)
