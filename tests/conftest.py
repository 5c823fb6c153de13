"""Shared test configuration: tiers are marked by folder (tests/unit, tests/integration, and
tests/integration/browser for the tests that also drive a real Chromium), tests using a
PostgreSQL fixture are marked `postgres`, and those using the Keycloak fixture `keycloak`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.pg import pg_admin_dsn, pg_bare_sandbox, pg_sandbox

__all__ = ["pg_admin_dsn", "pg_bare_sandbox", "pg_sandbox"]

# The processes the tests start (`python -m sessionwarden ...`, the example service) import the
# package of this checkout, as the tests themselves do (pyproject: pytest `pythonpath`).
_REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(_REPO / "streams"), str(_REPO), os.environ.get("PYTHONPATH")) if p
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path).replace("\\", "/")
        if "tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        if "pg_admin_dsn" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if "keycloak" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.keycloak)
        if "tests/integration/browser/" in path:
            item.add_marker(pytest.mark.browser)
