"""Fixtures of the PostgreSQL tests: the cut-off tests' store (tests/postgres/revoking.py)."""

from __future__ import annotations

from tests.postgres.revoking import store

__all__ = ["store"]
