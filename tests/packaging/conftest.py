"""The packaging tier: builds the wheel and installs it into throwaway virtualenvs (needs PyPI
for the build backend and the dependencies; pip's cache is reused)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "packaging: builds the wheel and installs it in a throwaway virtualenv"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/packaging/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.packaging)
