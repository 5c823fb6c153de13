"""Shared test configuration: tiers are marked by folder (tests/unit, tests/integration), and
tests using a PostgreSQL fixture are marked `postgres`."""

from __future__ import annotations

import pytest

from tests.pg import pg_admin_dsn, pg_bare_sandbox, pg_sandbox

__all__ = ["pg_admin_dsn", "pg_bare_sandbox", "pg_sandbox"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)
        if "pg_admin_dsn" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
