"""The `policy check` report: the effective table and the exit codes."""

from __future__ import annotations

import io
from pathlib import Path

from sessionwarden.cli.policy import render_effective, run_policy_check
from sessionwarden.policy import default_policy, load_policy, parse_policy

FIXTURES = Path(__file__).parents[1] / "fixtures" / "policies"


def table_rows(report: str) -> list[list[str]]:
    return [line.split() for line in report.splitlines()]


def run(path: str | None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_policy_check(path, out, err)
    return code, out.getvalue(), err.getvalue()


def test_report_header_names_the_policy_version_and_hard_cap() -> None:
    """Operators compare the version with the one in audit records."""
    policy = default_policy()

    lines = render_effective(policy).splitlines()

    expected = ["policy: default", f"version: {policy.version}", "hard cap (absolute): 30d"]
    assert expected == lines[:3]


def test_report_lists_every_user_type_by_risk_profile_combination() -> None:
    """The table is how a reviewer checks the stricter-wins outcome for each pair."""
    rows = table_rows(render_effective(default_policy()))

    expected = [
        ["(default)", "(default)", "30m", "24h"],
        ["(default)", "high", "5m", "12h"],
        ["admin", "(default)", "15m", "12h"],
        ["admin", "low", "15m", "12h"],
        ["service", "(default)", "1h", "24h"],
        ["service", "low", "30m", "24h"],
        ["customer", "medium", "15m", "12h"],
    ]
    missing: list[list[str]] = []
    assert missing == [row for row in expected if row not in rows]
    combinations = [row for row in rows if len(row) == 4 and row[2][0].isdigit()]
    expected_count = 5 * 4
    assert expected_count == len(combinations)


def test_report_lists_high_risk_operations_and_roles() -> None:
    """Reviewers see the reauthentication rules and the role catalog next to the timeouts."""
    rows = table_rows(render_effective(default_policy()))

    expected = [
        ["payments.*", "15m", "5m"],
        ["account.delete", "5m", "2m"],
        ["*.export", "30m", "-"],
        ["viewer", "10", "no"],
        ["superadmin", "100", "yes"],
    ]
    missing: list[list[str]] = []
    assert missing == [row for row in expected if row not in rows]


def test_report_for_a_policy_without_optional_sections() -> None:
    """A minimal policy still renders, with only the default row."""
    policy = load_policy(FIXTURES / "valid_small.toml")

    rows = table_rows(render_effective(policy))

    assert ["(default)", "(default)", "20m", "8h"] in rows
    assert ["admin", "high", "5m", "4h"] in rows


def test_check_of_the_shipped_policy_succeeds() -> None:
    """Without a path the command checks the policy the service would use by default."""
    code, out, err = run(None)

    expected = (0, render_effective(default_policy()), "")
    assert expected == (code, out, err)


def test_check_of_a_valid_file_prints_its_table() -> None:
    """Exit code 0 lets deployment pipelines gate on the check."""
    path = str(FIXTURES / "valid_small.toml")

    code, out, err = run(path)

    expected = (0, "policy: small", "")
    assert expected == (code, out.splitlines()[0], err)


def test_check_of_an_invalid_file_lists_every_error() -> None:
    """Exit code 1 with all errors lets the author fix the policy in one pass."""
    path = str(FIXTURES / "several_errors.toml")

    code, out, err = run(path)

    expected = (
        f"policy invalid: {path}\n"
        "  roles.admin.privilege: input should be less than or equal to 1000\n"
        "  user_types.admin.idle: must be <= absolute (12h)\n"
        "  risk_profiles.low.absolute: must be <= hard_cap_absolute (30d)\n"
    )
    assert (1, "", expected) == (code, out, err)  # exit code, stdout, stderr


def test_check_of_a_missing_file_fails_clearly() -> None:
    """A wrong path must not be mistaken for a valid policy."""
    path = str(FIXTURES / "does_not_exist.toml")

    code, out, err = run(path)

    expected = (1, "", f"policy invalid: {path}\n  {path}: file not found\n")
    assert expected == (code, out, err)


def test_a_skew_tolerance_above_the_shortest_idle_timeout_is_flagged() -> None:
    """A producer clock off by more than an idle timeout decides that session's fate."""
    policy = parse_policy(
        'name = "skewy"\nclock_skew_tolerance = "30s"\n[defaults]\nidle = "20s"\nabsolute = "1h"\n'
    )
    warned = [line for line in render_effective(policy).splitlines() if "warning:" in line]
    assert 1 == len(warned)
    assert warned[0].startswith(
        "warning: clock skew tolerance 30s exceeds the shortest idle timeout 20s"
        " ((default) x (default)):"
    )


def test_a_high_risk_idle_below_the_skew_tolerance_is_flagged() -> None:
    """The sticky idle of a high-risk rule is an idle timeout too."""
    policy = parse_policy(
        'name = "r"\nclock_skew_tolerance = "10s"\n[defaults]\nidle = "1m"\nabsolute = "1h"\n'
        '[[high_risk_operations]]\npattern = "pay.*"\nmax_auth_age = "1m"\nidle = "5s"\n'
    )
    warned = [line for line in render_effective(policy).splitlines() if "warning:" in line]
    assert 1 == len(warned) and "5s (high-risk pay.*)" in warned[0]


def test_a_skew_tolerance_within_every_idle_timeout_is_not_flagged() -> None:
    """The shipped policy keeps its tolerance below every idle timeout."""
    assert "warning:" not in render_effective(default_policy())


def test_report_names_the_live_session_cap_per_user() -> None:
    """Operators see how many sessions one user may hold before the oldest is ended."""
    lines = render_effective(default_policy()).splitlines()
    expected = "live sessions per user: at most 100 (a login beyond ends the oldest)"
    assert expected in lines


def test_a_concurrent_sessions_alert_at_or_above_the_cap_is_flagged() -> None:
    """The enforcer never lets a user hold more than the cap: such an alert cannot fire."""
    policy = parse_policy(
        'name = "c"\nmax_sessions_per_user = 5\n[defaults]\nidle = "5m"\nabsolute = "1h"\n'
        "[anomaly]\nconcurrent_sessions = { max = 5 }\n"
    )
    warned = [line for line in render_effective(policy).splitlines() if "warning:" in line]
    assert [
        "warning: anomaly.concurrent_sessions.max 5 is not below max_sessions_per_user 5:"
        " no user can hold more than 5 live sessions, so that alert never fires"
    ] == warned
