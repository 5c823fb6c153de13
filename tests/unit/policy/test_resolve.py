"""Per-event resolution: the stricter rule wins, unknown names take the defaults."""

from __future__ import annotations

from sessionwarden.policy import HighRiskRule, Timeouts, default_policy, parse_policy
from tests.unit.policy.factories import BASE

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
