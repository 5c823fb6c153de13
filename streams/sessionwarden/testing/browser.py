"""Debian's Chromium driven by Playwright, for the browser tests, the benchmark and other checks.

    with chromium() as browser:                       # raises BrowserUnavailable if missing
        page = browser.new_context().new_page()

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
from typing import TYPE_CHECKING

from sessionwarden.errors import SessionwardenError

if TYPE_CHECKING:
    from playwright.sync_api import Browser

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
