"""The timeout policy: loading, validation (never indefinite) and per-event resolution."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from schemas.errors import ConfigError
from streams.policy import (
    HighRiskRule,
    Policy,
    PolicyDocument,
    PolicyError,
    Timeouts,
    default_policy,
    format_duration,
    load_policy,
    parse_duration,
    parse_policy,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "policies"

BASE = """
name = "test"

[defaults]
idle = "30m"
absolute = "24h"
"""

AAL2_ABSOLUTE = 24 * 3600.0
AAL3_ABSOLUTE = 12 * 3600.0
AAL3_IDLE = 15 * 60.0


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    return caught.value.errors


def every_combination(policy: Policy) -> list[tuple[str, str, Timeouts]]:
    user_types = [*policy.user_types, "no-such-user-type"]
    risk_profiles = [*policy.risk_profiles, "no-such-risk-profile"]
    return [
        (user_type, risk_profile, policy.timeouts_for(user_type, risk_profile))
        for user_type in user_types
        for risk_profile in risk_profiles
    ]


# --- the shipped default policy -----------------------------------------------------------------


def test_shipped_default_policy_loads_with_its_catalogues() -> None:
    """The service starts with this policy when none is configured, so it must always load."""
    policy = default_policy()

    expected = (
        "default",
        ("admin", "employee", "customer", "service"),
        ("low", "medium", "high"),
        30 * 86400.0,
        120.0,
    )
    actual = (
        policy.name,
        policy.user_types,
        policy.risk_profiles,
        policy.hard_cap_absolute,
        policy.clock_skew_tolerance,
    )
    assert expected == actual


def test_shipped_default_never_exceeds_the_aal2_limits() -> None:
    """NIST SP 800-63B-4 AAL2: no session may outlive 24 h or idle longer than 1 h."""
    policy = default_policy()

    too_long = [
        (user_type, risk_profile)
        for user_type, risk_profile, timeouts in every_combination(policy)
        if timeouts.absolute > AAL2_ABSOLUTE or timeouts.idle > 3600.0
    ]

    expected: list[tuple[str, str]] = []
    assert expected == too_long
    longest = AAL2_ABSOLUTE
    assert longest == policy.max_absolute


def test_shipped_default_holds_admins_and_high_risk_to_aal3() -> None:
    """NIST AAL3 (12 h absolute, 15 min idle) applies to administrators and high-risk sessions."""
    policy = default_policy()

    too_long = [
        (user_type, risk_profile)
        for user_type, risk_profile, timeouts in every_combination(policy)
        if "admin" in (user_type, risk_profile) or risk_profile == "high"
        if timeouts.absolute > AAL3_ABSOLUTE or timeouts.idle > AAL3_IDLE
    ]

    expected: list[tuple[str, str]] = []
    assert expected == too_long


def test_shipped_default_high_risk_rules_and_anomaly_thresholds() -> None:
    """The enforcer and detectors read these values; a silent change would alter behaviour."""
    policy = default_policy()

    expected_rules = [
        ("payments.*", 900.0, 300.0),
        ("admin.*", 900.0, 300.0),
        ("account.delete", 300.0, 120.0),
        ("*.export", 1800.0, None),
    ]
    actual_rules = [(r.pattern, r.max_auth_age, r.idle) for r in policy.high_risk_operations]
    assert expected_rules == actual_rules
    anomaly = policy.anomaly
    expected_anomaly = (3, 3600.0, 2, 600.0, 300.0, 5, 900.0)
    actual_anomaly = (
        anomaly.repeated_expirations.count,
        anomaly.repeated_expirations.window,
        anomaly.escalation.min_levels,
        anomaly.escalation.window,
        anomaly.escalation.high_risk_within,
        anomaly.concurrent_sessions.max,
        anomaly.cooldown,
    )
    assert expected_anomaly == actual_anomaly


def test_anomaly_thresholds_default_when_the_section_is_absent() -> None:
    """A policy without an [anomaly] table still gives the detectors usable thresholds."""
    anomaly = parse_policy(BASE).anomaly

    expected = (3, 3600.0, 5, 900.0)
    actual = (
        anomaly.repeated_expirations.count,
        anomaly.repeated_expirations.window,
        anomaly.concurrent_sessions.max,
        anomaly.cooldown,
    )
    assert expected == actual


# --- resolution ---------------------------------------------------------------------------------

BOTH_RULES = (
    BASE
    + """
[user_types.staff]
idle = "10m"
absolute = "20h"

[risk_profiles.risky]
idle = "20m"
absolute = "10h"
"""
)


def test_stricter_idle_from_user_type_and_absolute_from_risk_profile() -> None:
    """Each field takes the shorter of the matching rules, whichever rule it comes from."""
    policy = parse_policy(BOTH_RULES)

    assert Timeouts(idle=600.0, absolute=36000.0) == policy.timeouts_for("staff", "risky")


def test_stricter_idle_from_risk_profile_and_absolute_from_user_type() -> None:
    """The other direction: the risk profile may be the stricter rule for idle."""
    policy = parse_policy(
        BASE
        + """
[user_types.staff]
idle = "20m"
absolute = "6h"

[risk_profiles.risky]
idle = "5m"
absolute = "12h"
"""
    )

    assert Timeouts(idle=300.0, absolute=21600.0) == policy.timeouts_for("staff", "risky")


def test_field_no_rule_sets_comes_from_defaults() -> None:
    """A partial override must not leave the other timeout unset (never indefinite)."""
    policy = parse_policy(BASE + '[user_types.staff]\nidle = "10m"\n')

    assert Timeouts(idle=600.0, absolute=86400.0) == policy.timeouts_for("staff", "anything")


def test_unknown_user_type_and_risk_profile_use_defaults() -> None:
    """Unlisted values from upstream must still get finite timeouts, never none at all."""
    policy = parse_policy(BOTH_RULES)

    assert Timeouts(idle=1800.0, absolute=86400.0) == policy.timeouts_for("robot", "unrated")
    assert Timeouts(idle=600.0, absolute=72000.0) == policy.timeouts_for("staff", "unrated")
    assert Timeouts(idle=1200.0, absolute=36000.0) == policy.timeouts_for("robot", "risky")


def test_max_absolute_is_the_longest_effective_absolute() -> None:
    """Retention elsewhere is bounded by it, so it must cover every combination."""
    policy = parse_policy(BOTH_RULES)

    expected = 86400.0
    assert expected == policy.max_absolute


def test_high_risk_rule_first_match_in_file_order() -> None:
    """An earlier, more specific rule must not be shadowed by a later catch-all."""
    policy = parse_policy(
        BASE
        + """
[[high_risk_operations]]
pattern = "payments.refund"
max_auth_age = "5m"

[[high_risk_operations]]
pattern = "payments.*"
max_auth_age = "15m"
idle = "5m"
"""
    )

    refund = HighRiskRule(pattern="payments.refund", max_auth_age=300.0)
    payments = HighRiskRule(pattern="payments.*", max_auth_age=900.0, idle=300.0)
    assert refund == policy.high_risk_rule("payments.refund")
    assert payments == policy.high_risk_rule("payments.transfer")
    assert payments == policy.high_risk_rule("payments.transfer")
    assert policy.high_risk_rule("Payments.transfer") is None
    assert policy.high_risk_rule("profile.view") is None


def test_high_risk_rule_none_without_rules() -> None:
    """A policy without high-risk operations never demands reauthentication."""
    assert parse_policy(BASE).high_risk_rule("payments.transfer") is None


def test_privilege_of_takes_the_highest_known_role() -> None:
    """Escalation detection compares these numbers; unknown roles must not count."""
    policy = default_policy()

    expected = [90, 0, 0]
    actual = [
        policy.privilege_of(["viewer", "admin", "made-up"]),
        policy.privilege_of(["made-up"]),
        policy.privilege_of([]),
    ]
    assert expected == actual


def test_sensitive_roles_in_input_order() -> None:
    """Revocation acts on these first; order follows the event so output is reproducible."""
    policy = default_policy()

    actual = policy.sensitive_roles(["admin", "viewer", "billing", "made-up", "admin"])

    expected = ["admin", "billing"]
    assert expected == actual


# --- durations ----------------------------------------------------------------------------------


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
