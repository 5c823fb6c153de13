"""Debian's Chromium driven by Playwright, for the browser tests, the benchmark and other checks.

    with chromium() as browser:                       # raises BrowserUnavailable if missing
        page = browser.new_context().new_page()

and the pages of the example service (sessionwarden/testing/example.py) as a person uses them:
``sign_in`` through its form, ``open_as`` a session, ``wait_ended`` until the page has logged
itself out.

Playwright's own browser downloads are never used (``playwright install`` needs a network this
project does not assume): the executable is ``/usr/bin/chromium`` from the ``chromium`` package,
which ``make browser`` installs, or ``SESSIONWARDEN_CHROMIUM``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionwarden.errors import SessionwardenError

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserUnavailable(SessionwardenError):
    """No usable Chromium (or no Playwright) here; the message says why."""


def chromium_path() -> Path:
    """The Chromium executable to drive: ``$SESSIONWARDEN_CHROMIUM`` or /usr/bin/chromium."""
    return Path(os.environ.get("SESSIONWARDEN_CHROMIUM") or DEFAULT_CHROMIUM)


def unavailable_reason() -> str | None:
    """Why no browser can be launched here, or None if one can."""
    path = chromium_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        hint = "run `make browser` (apt-get install chromium, as root)"
        if shutil.which("apt-get") is None:
            hint = "this system has no apt-get to install Debian's chromium package"
        return f"no Chromium at {path}: {hint}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    return None


@contextlib.contextmanager
def chromium(*extra_flags: str) -> Iterator[Browser]:
    """A headless Chromium for the duration of the block; closed (with Playwright) after."""
    reason = unavailable_reason()
    if reason is not None:
        raise BrowserUnavailable(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path()), args=[*CHROMIUM_FLAGS, *extra_flags]
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(context: BrowserContext, base: str, user: str, risk: str) -> tuple[Page, str]:
    """Sign in through the example's login form; returns the data page (its revocation stream
    open) and the session id from the cookie."""
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=user]", user)
    page.select_option("select[name=risk]", risk)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    wait_connected(page)
    return page, session_cookie(context)


def open_as(context: BrowserContext, base: str, session_id: str) -> Page:
    """The data page for a session the caller logged in itself (cookie set directly; the id
    from ``ExampleService.issue()``), with its revocation stream open."""
    context.add_cookies([{"name": "session", "value": session_id, "url": base}])
    page = context.new_page()
    page.goto(f"{base}/")
    wait_connected(page)
    return page


def session_cookie(context: BrowserContext) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "session")


def wait_connected(page: Page, timeout: float = 10) -> None:
    """Until the page's Sessionwarden script has its revocation stream open."""
    page.wait_for_function(
        "window.sessionwarden && window.sessionwarden.connected", timeout=timeout * 1000
    )


def wait_ended(page: Page, timeout: float) -> dict[str, Any]:
    """Until the page has logged itself out; the script's record of it (``at`` in epoch ms)."""
    page.wait_for_function(
        "window.sessionwarden && window.sessionwarden.ended !== null", timeout=timeout * 1000
    )
    ended: dict[str, Any] = page.evaluate("window.sessionwarden.ended")
    return ended


def ended_state(page: Page) -> Any:
    return page.evaluate("window.sessionwarden && window.sessionwarden.ended")
