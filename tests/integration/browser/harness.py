"""The example service stack and browser helpers, for the browser tests, the benchmark and other
end-to-end checks.

    with ExampleService(settings) as service:                 # listener + hub + uvicorn
        page, session_id = sign_in(context, service.url, "alice", "medium")
        ended = wait_ended(page, timeout=10)                   # {"reason", "at", "via", ...}

``ExampleService`` (the drill's ``Service``) runs ``examples/service/app.py``'s ``create_app`` in
this process: a real RevocationListener on the settings' revocation topic feeding a PushHub, a
real publisher on the input topic (so ``/login`` starts a session the enforcer tracks), served
by uvicorn on 127.0.0.1 and a free port. ``Screenshots`` saves PNGs under ``test-artifacts/``
(git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from sessionwarden.audit.drill.stack import Service
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.policy import load_policy
from sessionwarden.sdk.publisher import AsyncAuthEventPublisher
from sessionwarden.testing.browser import unavailable_reason
from tests.integration.harness import FAST_POLICY, REPO

ARTIFACTS = REPO / "test-artifacts"
SESSION_KEY = b"example-service-test-session-key"  # shared: a restarted service knows its sessions


class ExampleService(Service):
    """The drill's example service (sessionwarden/audit/drill/stack.py) with a real publisher on the
    input topic and the test policy (see the module docstring).

    ``applied`` maps each session id to the wall-clock moment the listener applied its
    revocation (``is_revoked`` turned true), ``revocations`` to the record itself."""

    def __init__(
        self,
        settings: Settings,
        policy: Path = FAST_POLICY,
        tenant: str = "acme",
        port: int = 0,
        **listener: Any,
    ) -> None:
        self.applied: dict[str, float] = {}
        self.revocations: dict[str, Revocation] = {}
        publisher = AsyncAuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input)
        super().__init__(
            settings, load_policy(policy), tenant, publisher=publisher, port=port,
            listener=listener, session_key=SESSION_KEY,
        )  # fmt: skip

    def on_revocation(self, record: Revocation) -> None:
        self.applied.setdefault(record.session_id, time.time())
        self.revocations.setdefault(record.session_id, record)
        super().on_revocation(record)


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
