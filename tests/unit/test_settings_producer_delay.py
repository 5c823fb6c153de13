"""The producer-delay budget setting: default, environment, bounds."""

from __future__ import annotations

import pytest

from sessionwarden.config.settings import load_settings
from sessionwarden.errors import ConfigError


def test_the_budget_defaults_to_no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """0 keeps today's latency: deadlines fire as soon as the input is read past them."""
    monkeypatch.delenv("SESSIONWARDEN_PRODUCER_DELAY_BUDGET_S", raising=False)
    assert 0.0 == load_settings().enforcer.producer_delay_budget_s


def test_the_budget_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operators set it next to the other enforcer settings."""
    monkeypatch.setenv("SESSIONWARDEN_PRODUCER_DELAY_BUDGET_S", "2.5")
    assert 2.5 == load_settings().enforcer.producer_delay_budget_s


def test_a_negative_budget_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A negative budget would fire deadlines before the input is read past them."""
    monkeypatch.setenv("SESSIONWARDEN_PRODUCER_DELAY_BUDGET_S", "-1")
    with pytest.raises(ConfigError, match="producer_delay_budget_s"):
        load_settings()
