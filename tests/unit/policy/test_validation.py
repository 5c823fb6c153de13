"""Loading and validation (never indefinite, every error named) and the policy's version."""

from __future__ import annotations

import pytest

from sessionwarden.errors import ConfigError
from sessionwarden.policy import (
    Policy,
    PolicyDocument,
    PolicyError,
    Timeouts,
    load_policy,
    parse_policy,
)
from tests.unit.policy.factories import BASE, FIXTURES, errors_of

# --- rejections, each naming the field ------------------------------------------------------


def test_zero_idle_rejected() -> None:
    """A zero idle timeout would end every session at once or, if read as unset, never."""
    actual = errors_of('name = "t"\n[defaults]\nidle = "0s"\nabsolute = "24h"\n')

    expected = ["defaults.idle: must be a positive duration, got '0s'"]
    assert expected == actual


def test_negative_absolute_rejected() -> None:
    """A negative timeout has no meaning and must not slip through as 'no limit'."""
    actual = errors_of(BASE + '[risk_profiles.high]\nabsolute = "-12h"\n')

    expected = ["risk_profiles.high.absolute: must be a positive duration, got '-12h'"]
    assert expected == actual


def test_non_finite_idle_rejected() -> None:
    """TOML allows inf and nan; either would make a session indefinite."""
    actual = errors_of(BASE + "[user_types.admin]\nidle = inf\n")

    expected = ["user_types.admin.idle: must be a finite duration, got inf"]
    assert expected == actual


def test_missing_absolute_in_defaults_rejected() -> None:
    """Without a default absolute timeout unlisted sessions would never end."""
    actual = errors_of('name = "t"\n[defaults]\nidle = "30m"\n')

    expected = ["defaults.absolute: required"]
    assert expected == actual


def test_idle_above_absolute_in_defaults_rejected() -> None:
    """An idle timeout longer than the absolute one is a configuration mistake."""
    actual = errors_of('name = "t"\n[defaults]\nidle = "25h"\nabsolute = "24h"\n')

    expected = ["defaults.idle: must be <= absolute (24h)"]
    assert expected == actual


def test_idle_above_absolute_in_an_override_rejected() -> None:
    """The same mistake inside one rule is named at that rule's field."""
    actual = errors_of(BASE + '[user_types.admin]\nidle = "13h"\nabsolute = "12h"\n')

    expected = ["user_types.admin.idle: must be <= absolute (12h)"]
    assert expected == actual


def test_idle_above_absolute_only_in_combination_rejected() -> None:
    """Each rule may be fine alone yet a user type's idle exceed a risk profile's absolute."""
    actual = errors_of(
        BASE + '[user_types.service]\nidle = "2h"\n[risk_profiles.high]\nabsolute = "1h"\n'
    )

    expected = [
        "user_types.service.idle: must be <= absolute (1h) from risk_profiles.high.absolute,"
        " as combined for user type 'service' and risk profile 'high'"
    ]
    assert expected == actual


def test_override_idle_above_default_absolute_rejected() -> None:
    """An override's idle alone may exceed the default absolute it is combined with."""
    actual = errors_of(BASE + '[user_types.service]\nidle = "25h"\n')

    expected = [
        "user_types.service.idle: must be <= absolute (24h) from defaults.absolute,"
        " as combined for user type 'service' and risk profile (default)"
    ]
    assert expected == actual


def test_absolute_above_hard_cap_rejected() -> None:
    """The hard cap is the outer bound on any session's lifetime."""
    actual = errors_of(
        'name = "t"\nhard_cap_absolute = "7d"\n[defaults]\nidle = "30m"\nabsolute = "8d"\n'
    )

    expected = ["defaults.absolute: must be <= hard_cap_absolute (7d)"]
    assert expected == actual


def test_hard_cap_above_366_days_rejected() -> None:
    """The cap itself is bounded so a policy cannot make sessions effectively permanent."""
    actual = errors_of('hard_cap_absolute = "400d"\n' + BASE)

    expected = ["hard_cap_absolute: must be <= 366d"]
    assert expected == actual


def test_high_risk_rule_idle_must_be_positive() -> None:
    """The shorter idle after a high-risk operation is a timeout like any other."""
    actual = errors_of(
        BASE + '[[high_risk_operations]]\npattern = "x.*"\nmax_auth_age = "5m"\nidle = 0\n'
    )

    expected = ["high_risk_operations[0].idle: must be a positive duration, got 0"]
    assert expected == actual


def test_unknown_key_rejected_with_a_suggestion() -> None:
    """A typo such as 'idel' would otherwise silently fall back to a longer timeout."""
    with pytest.raises(PolicyError) as caught:
        load_policy(FIXTURES / "typo_key.toml")

    expected = ["risk_profiles.high.idel: unknown key (did you mean 'idle'?)"]
    assert expected == caught.value.errors


def test_role_privilege_must_be_an_integer_in_range() -> None:
    """Privilege levels are compared numerically; booleans or huge values are mistakes."""
    actual = errors_of(BASE + "[roles.a]\nprivilege = true\n[roles.b]\nprivilege = 1001\n")

    expected = [
        "roles.a.privilege: input should be a valid integer",
        "roles.b.privilege: input should be less than or equal to 1000",
    ]
    assert expected == actual


def test_bad_toml_reports_line_and_column() -> None:
    """Authors need to find a syntax error without guessing."""
    with pytest.raises(PolicyError) as caught:
        load_policy(FIXTURES / "broken_syntax.toml")

    expected = [
        "line 4, column 10: invalid TOML (expected newline or end of document after a statement)"
    ]
    assert expected == caught.value.errors


def test_several_errors_reported_together() -> None:
    """Fixing a policy one error per run is slow; field and cross-field errors come together."""
    with pytest.raises(PolicyError) as caught:
        load_policy(FIXTURES / "several_errors.toml")

    expected = [
        "roles.admin.privilege: input should be less than or equal to 1000",
        "user_types.admin.idle: must be <= absolute (12h)",
        "risk_profiles.low.absolute: must be <= hard_cap_absolute (30d)",
    ]
    assert expected == caught.value.errors
    assert "\n".join(expected) == str(caught.value)


def test_policy_built_from_a_document_is_still_checked() -> None:
    """Code that skips the loaders must not get a policy with an indefinite combination."""
    raw = {
        "name": "t",
        "defaults": {"idle": "30m", "absolute": "24h"},
        "user_types": {"a": {"idle": "25h"}},
    }
    document = PolicyDocument.model_validate(raw)

    with pytest.raises(PolicyError) as caught:
        Policy(document)

    expected = [
        "user_types.a.idle: must be <= absolute (24h) from defaults.absolute,"
        " as combined for user type 'a' and risk profile (default)"
    ]
    assert expected == caught.value.errors


def test_policy_error_is_a_config_error() -> None:
    """Callers that handle ConfigError at startup must also catch an invalid policy."""
    assert issubclass(PolicyError, ConfigError)


def test_missing_file_is_a_policy_error() -> None:
    """A mistyped path must fail clearly rather than fall back to some other policy."""
    missing = FIXTURES / "does_not_exist.toml"

    with pytest.raises(PolicyError) as caught:
        load_policy(missing)

    assert [f"{missing}: file not found"] == caught.value.errors


def test_load_policy_reads_a_valid_file() -> None:
    """The file path used in deployment goes through the same validation as parse_policy."""
    policy = load_policy(FIXTURES / "valid_small.toml")

    expected_name = "small"
    assert expected_name == policy.name
    assert Timeouts(idle=300.0, absolute=14400.0) == policy.timeouts_for("admin", "high")
    assert Timeouts(idle=600.0, absolute=28800.0) == policy.timeouts_for("admin", "low")


# --- version ------------------------------------------------------------------------------------


def test_version_ignores_comments_whitespace_and_duration_spelling() -> None:
    """Reformatting a policy must not look like a policy change in audit records."""
    reformatted = (
        "# a comment\nname   =   'test'\n\n[defaults]\nabsolute = 86400  # seconds\nidle = '30m'\n"
    )

    version = parse_policy(BASE).version
    expected_length = 16
    assert expected_length == len(version)
    assert version == parse_policy(reformatted).version


def test_version_changes_when_a_value_changes() -> None:
    """Any change to what is enforced must be visible in the version."""
    changed = BASE.replace('idle = "30m"', 'idle = "29m"')

    assert parse_policy(BASE).version != parse_policy(changed).version


# --- the live sessions of one user ----------------------------------------------------------


def test_max_sessions_per_user_defaults_to_a_finite_cap() -> None:
    """Without a cap one user's live sessions, and what one role change fans out to, are
    unbounded: a policy that does not set it still gets one."""
    assert 100 == parse_policy(BASE).max_sessions_per_user
    assert 7 == parse_policy("max_sessions_per_user = 7\n" + BASE).max_sessions_per_user


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "max_sessions_per_user: must be >= 1, got 0"),
        ("-3", "max_sessions_per_user: must be >= 1, got -3"),
        ("1001", "max_sessions_per_user: must be <= 1000, got 1001"),
        ('"10"', "max_sessions_per_user: must be an integer, got '10'"),
        ("inf", "max_sessions_per_user: must be an integer, got inf"),
    ],
)
def test_max_sessions_per_user_must_be_a_bounded_positive_integer(
    value: str, expected: str
) -> None:
    """No value may switch the cap off or set it so high that one record fans out unbounded."""
    assert [expected] == errors_of(f"max_sessions_per_user = {value}\n" + BASE)
