"""The dashboard's revocation action in a real Chromium, with a real enforcer: the person
confirms, the user's sessions end (the page shows the operator's revocations), and a dismissed
confirmation sends nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from sessionwarden.config.settings import Settings
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.serve import ServerThread
from sessionwarden.web.dashboard.service import create_app
from tests.integration.browser.harness import Screenshots
from tests.integration.harness import REPO, EnforcerProcess, login_doc, wait_until

TOKEN = "dashboard-revoke-token-" + uuid.uuid4().hex
SALT = "test-salt"
OPERATOR = "User:sessionwarden-dashboard"
POLICY = REPO / "streams/sessionwarden/policy/shipped/default.toml"  # nothing times out


@pytest.fixture
def stack(settings_factory: Callable[..., Settings]) -> Iterator[tuple[Settings, str]]:
    """The dashboard with its actions on, and an enforcer that applies its operator's commands."""
    settings = settings_factory(log_salt=SALT, dashboard_operator=OPERATOR)
    enforcer = EnforcerProcess(
        settings,
        policy=Path(POLICY),
        SESSIONWARDEN_OPERATORS=f"User:sessionwarden-operator,{OPERATOR}",
    )
    try:
        enforcer.wait_assigned()
        with ServerThread(create_app(settings, TOKEN)) as server:
            yield settings, server.url
    finally:
        enforcer.stop()


def test_a_confirmed_action_ends_the_users_sessions_and_a_dismissed_one_sends_nothing(
    stack: tuple[Settings, str], new_context: Any, shots: Screenshots
) -> None:
    """What the security team does at 3 a.m.: one form, one confirmation, every session ended,
    audited with the dashboard's operator and the reason."""
    settings, url = stack
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    user = f"victim-{uuid.uuid4().hex[:6]}"
    sessions = [f"{user}-s1", f"{user}-s2"]
    try:
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            for sid in sessions:
                pub.publish(login_doc(sid, user, time.time()))
        wait_until(lambda: len(audit.docs(type="session_started")) == 2, 30, "two sessions")
        page = new_context().new_page()
        page.goto(f"{url}/#token={TOKEN}")
        page.wait_for_url(f"{url}/")
        expect(page.locator("#actions")).to_be_visible()
        form = page.locator("#revoke-form")
        form.locator("[name=tenant]").fill("acme")
        form.locator("[name=user_id]").fill(user)
        form.locator("[name=reason_admin]").fill("phished, SEC-7")

        dialogs: list[str] = []

        def dismiss(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.once("dialog", dismiss)
        form.locator("button").click()
        expect(page.locator("#revoke-result")).to_have_text("cancelled: nothing sent")

        page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        form.locator("button").click()
        expect(page.locator("#revoke-result")).to_contain_text("sent: command")
        hashed = [SessionHasher(SALT)(sid) for sid in sessions]
        for shown in hashed:
            expect(page.locator("#recent-table")).to_contain_text(shown, timeout=30_000)
        shots.take(page, "revoked-by-the-dashboard")
        applied = wait_until(
            lambda: audit.docs(type="operator_command_applied", target_user_id=user),
            30,
            "the enforcer's audit of the command",
        )
    finally:
        audit.close()

    assert 2 == len(dialogs) and all(f"every session of user {user}" in d for d in dialogs)
    assert [(OPERATOR, "phished, SEC-7", 2)] == [
        (d["user_id"], d["reason_admin"], d["revoked"]) for d in applied
    ]
    expect(page.locator("#recent-table")).to_contain_text("operator")
