"""A base policy and helpers for the timeout policy's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionwarden.policy import Policy, PolicyError, Timeouts, parse_policy

FIXTURES = Path(__file__).parents[2] / "fixtures" / "policies"

BASE = """
name = "test"

[defaults]
idle = "30m"
absolute = "24h"
"""


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
