"""Shared test configuration: tiers are marked by folder (tests/unit, tests/integration, and
tests/integration/browser for the tests that also drive a real Chromium)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path).replace("\\", "/")
        if "tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        if "tests/integration/browser/" in path:
            item.add_marker(pytest.mark.browser)
