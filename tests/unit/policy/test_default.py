"""The shipped default policy: it loads, and holds the assurance levels' limits."""

from __future__ import annotations

from sessionwarden.policy import default_policy, parse_policy
from tests.unit.policy.factories import BASE, every_combination

AAL2_ABSOLUTE = 24 * 3600.0
AAL3_ABSOLUTE = 12 * 3600.0
AAL3_IDLE = 15 * 60.0


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


def test_shipped_default_caps_the_live_sessions_of_a_user() -> None:
    """OWASP and NIST SP 800-63B: concurrent sessions per user are limited; the cap also
    bounds the sessions one role change must end."""
    assert 100 == default_policy().max_sessions_per_user
