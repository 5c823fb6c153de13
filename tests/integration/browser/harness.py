"""The example service stack and browser helpers, for the browser tests.

    with ExampleService(settings) as service:                 # listener + hub + uvicorn
        page, session_id = sign_in(context, service.url, "alice", "medium")
        ended = wait_ended(page, timeout=10)                   # {"reason", "at", "via", ...}

``ExampleService`` and the page helpers are sessionwarden.testing's (example.py, browser.py),
shared with the benchmarks and the drill; here the example runs on the tests' policy.
``Screenshots`` saves PNGs under ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from sessionwarden.config.settings import Settings
from sessionwarden.testing import example
from sessionwarden.testing.browser import ended_state as ended_state
from sessionwarden.testing.browser import open_as as open_as
from sessionwarden.testing.browser import session_cookie as session_cookie
from sessionwarden.testing.browser import sign_in as sign_in
from sessionwarden.testing.browser import unavailable_reason
from sessionwarden.testing.browser import wait_connected as wait_connected
from sessionwarden.testing.browser import wait_ended as wait_ended
from sessionwarden.testing.example import SESSION_KEY as SESSION_KEY
from tests.integration.harness import FAST_POLICY, REPO

ARTIFACTS = REPO / "test-artifacts"


class ExampleService(example.ExampleService):
    """The example service with a real publisher, on the tests' fast policy unless told."""

    def __init__(
        self,
        settings: Settings,
        policy: Path = FAST_POLICY,
        tenant: str = "acme",
        port: int = 0,
        **listener: Any,
    ) -> None:
        super().__init__(settings, policy, tenant, port, **listener)


class Screenshots:
    """PNGs of one test under test-artifacts/<name>/, numbered in the order taken."""

    def __init__(self, name: str) -> None:
        self.dir = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        shutil.rmtree(self.dir, ignore_errors=True)  # this run's pictures only
        self.dir.mkdir(parents=True)
        self.taken: list[Path] = []

    def take(self, page: Page, step: str) -> Path:
        path = self.dir / f"{len(self.taken) + 1:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


def chromium_expected() -> bool:
    """Whether browser parts run: Chromium is there, or CI (``CI=true``) requires it, so that a
    missing browser fails there rather than leaving the browser parts out."""
    return unavailable_reason() is None or os.environ.get("CI") == "true"


def require_chromium() -> None:
    """Skip a browser test, with the reason, where Chromium is missing; under CI a missing
    browser fails the test instead, so it never passes as skipped."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests need Chromium: {reason}")
    pytest.skip(f"browser tests need Chromium: {reason}")
