"""The dashboard's revocation actions: off by default; on, only an authenticated, same-origin
request with the page's token and a reason sends a command, and the command names the
dashboard's operator."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from sessionwarden.contracts.commands import OperatorCommand
from sessionwarden.web.dashboard.actions import CSRF_HEADER, RevokeActions, csrf_token
from sessionwarden.web.dashboard.app import COOKIE, dashboard_app
from sessionwarden.web.dashboard.view import DashboardState

TOKEN = "dashboard-unit-token-0123456789"
ORIGIN = "http://testserver"
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


class Sent:
    def __init__(self) -> None:
        self.commands: list[OperatorCommand] = []

    def send(self, command: OperatorCommand) -> None:
        self.commands.append(command)


def app(actions: RevokeActions | None) -> Any:
    return dashboard_app(DashboardState(show_session=str), threading.Lock(), TOKEN, actions=actions)


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def client(sent: Sent) -> Iterator[TestClient]:
    actions = RevokeActions(sent, "User:dashboard", TOKEN, lambda s: "hash", lambda: NOW)
    with TestClient(app(actions)) as c:
        assert COOKIE in c.post("/login", data={"token": TOKEN}, follow_redirects=False).cookies
        yield c


def post(client: TestClient, body: Any, **headers: str) -> Any:
    defaults = {
        "origin": ORIGIN,
        CSRF_HEADER: csrf_token(TOKEN),
        "content-type": "application/json",
    }
    return client.post("/api/revoke", json=body, headers={**defaults, **headers})


GOOD = {"tenant": "acme", "user_id": "alice", "reason_admin": "phished, SEC-7"}


def test_a_confirmed_request_sends_a_user_command_naming_the_dashboards_operator(
    client: TestClient, sent: Sent
) -> None:
    """What the page sends after the person confirmed: one command, audited as the dashboard."""
    answer = post(client, GOOD)

    assert 202 == answer.status_code
    [command] = sent.commands
    assert ("acme", "user", "alice", None, "User:dashboard", "phished, SEC-7", NOW) == (
        command.tenant,
        command.scope,
        command.user_id,
        command.session_id,
        command.operator,
        command.reason_admin,
        command.issued_at,
    )
    assert str(command.command_id) == answer.json()["command_id"]


def test_a_session_given_makes_a_session_command(client: TestClient, sent: Sent) -> None:
    """One session of the user, not all of them."""
    post(client, {**GOOD, "session_id": "s-9"})

    assert [("session", "s-9")] == [(c.scope, c.session_id) for c in sent.commands]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"origin": "https://evil.example"}, 403),  # another site's page
        ({"origin": ""}, 403),  # no origin at all
        ({CSRF_HEADER: "0" * 64}, 403),  # the page's token is unknown to another site
        ({CSRF_HEADER: ""}, 403),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),  # a plain form post
    ],
)
def test_a_forged_cross_site_request_sends_nothing(
    client: TestClient, sent: Sent, headers: dict[str, str], status: int
) -> None:
    """The login cookie rides along with any request the browser makes: it is not enough."""
    assert status == post(client, GOOD, **headers).status_code
    assert [] == sent.commands


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "reason_admin": "  "},
        {k: v for k, v in GOOD.items() if k != "reason_admin"},
        {k: v for k, v in GOOD.items() if k != "user_id"},
        {**GOOD, "scope": "all_users"},  # the dashboard never ends a whole tenant
        ["not", "an", "object"],
    ],
)
def test_a_request_without_a_reason_or_user_is_refused(
    client: TestClient, sent: Sent, body: Any
) -> None:
    """The audit must say why, and whose sessions."""
    assert 422 == post(client, body).status_code
    assert [] == sent.commands


def test_without_the_token_nothing_is_sent(sent: Sent) -> None:
    """Authenticated first: the gate answers 401 before the action is reached."""
    actions = RevokeActions(sent, "User:dashboard", TOKEN, str, lambda: NOW)
    with TestClient(app(actions)) as anonymous:
        answer = anonymous.post("/api/revoke", json=GOOD, headers={"origin": ORIGIN})
    assert (401, []) == (answer.status_code, sent.commands)


def test_a_script_with_the_bearer_token_needs_no_page_token(sent: Sent) -> None:
    """A bearer header is no ambient credential: a cross-site page cannot attach it."""
    actions = RevokeActions(sent, "User:dashboard", TOKEN, str, lambda: NOW)
    with TestClient(app(actions)) as script:
        answer = script.post("/api/revoke", json=GOOD, headers={"authorization": f"Bearer {TOKEN}"})
    assert (202, 1) == (answer.status_code, len(sent.commands))


def test_the_actions_are_off_unless_an_operator_is_configured() -> None:
    """Read only by default: no revoke route, and the page shows no form."""
    with TestClient(app(None)) as c:
        headers = {"authorization": f"Bearer {TOKEN}"}
        described = c.get("/api/actions", headers=headers).json()
        answer = c.post("/api/revoke", json=GOOD, headers=headers)
    assert ({"enabled": False}, 404) == (described, answer.status_code)


def test_the_page_token_is_served_only_to_the_authenticated(client: TestClient) -> None:
    """Another site cannot read it (no CORS), and without the login nobody can."""
    described = client.get("/api/actions").json()
    with TestClient(app(RevokeActions(Sent(), "User:d", TOKEN, str))) as anonymous:
        refused = anonymous.get("/api/actions")
    assert (True, csrf_token(TOKEN), 401) == (
        described["enabled"],
        described["csrf"],
        refused.status_code,
    )
