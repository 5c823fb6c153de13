"""Browser fixtures: one Chromium per test module (skipped, with the reason, where there is
none), a fresh browser context per test, screenshots of every open page when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext

from sessionwarden.testing.browser import chromium
from tests.integration.browser.harness import Screenshots, require_chromium


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module, not per session: Playwright's sync API keeps an event loop running in this
    thread while it is open, which would break later tests that call ``asyncio.run``."""
    require_chromium()
    with chromium() as launched:
        yield launched


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(request.node.name)


@pytest.fixture
def new_context(
    browser: Browser, request: pytest.FixtureRequest, shots: Screenshots
) -> Iterator[Any]:
    """Makes isolated browser contexts (each its own cookies: another user); all closed after,
    every open page screenshotted first if the test failed."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(viewport={"width": 900, "height": 600})
        contexts.append(context)
        return context

    yield make
    report = getattr(request.node, "report_call", None)
    for context in contexts:
        if report is not None and report.failed:
            for n, page in enumerate(context.pages):
                if not page.is_closed():
                    shots.take(page, f"failed-page{n}")
        context.close()
