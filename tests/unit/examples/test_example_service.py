"""The example service (which the drill drives) refuses every session it did not issue: on its
API, its page, its WebSocket and its browser stream, whatever the revocation topic says."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from streams.drill.stack import load_example
from streams.web.push import STREAM_PATH, PushHub

KEY = b"k" * 32


class QuietListener:
    """A healthy listener that knows no revocation."""

    fail_closed = True

    def healthy(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def staleness(self) -> float:
        return 0.0

    def is_revoked(self, tenant: str, session_id: str) -> bool:
        return False

    def revocation(self, tenant: str, session_id: str) -> None:
        return None

    def __len__(self) -> int:
        return 0


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example()


@pytest.fixture
def client(example: ModuleType) -> Iterator[TestClient]:
    hub = PushHub(lookup=lambda tenant, sid: None)
    app = example.create_app(QuietListener(), hub, None, "acme", session_key=KEY)
    with TestClient(app) as client:
        yield client


MADE_UP = ["anything", "s-1", "abc.def", "x" * 40 + "." + "A" * 24]


@pytest.mark.parametrize("session_id", MADE_UP)
def test_the_api_refuses_a_session_id_it_did_not_issue(client: TestClient, session_id: str) -> None:
    """A made-up session id (not revoked, so the middleware lets it by) gets no data."""
    assert 401 == client.get("/api/data", headers={"x-session-id": session_id}).status_code
    assert 401 == client.get("/api/data", headers={"cookie": f"session={session_id}"}).status_code


def test_the_api_serves_a_session_it_issued_and_one_signed_by_another_key_is_refused(
    client: TestClient, example: ModuleType
) -> None:
    """Issued means signed with this service's key."""
    mine, foreign = example.issue_session_id(KEY), example.issue_session_id(b"o" * 32)
    assert 200 == client.get("/api/data", headers={"x-session-id": mine}).status_code
    assert 401 == client.get("/api/data", headers={"x-session-id": foreign}).status_code


def test_the_page_sends_a_made_up_session_to_the_login_page(client: TestClient) -> None:
    """No account page for a session nobody signed in."""
    response = client.get("/", headers={"cookie": "session=anything"}, follow_redirects=False)
    assert (303, "/login") == (response.status_code, response.headers["location"])


def test_the_page_of_a_signed_in_session_shows_its_user(client: TestClient) -> None:
    """The login form issues a session the page then accepts."""
    login = client.post("/login", data={"user": "alice", "risk": "low"}, follow_redirects=False)
    assert 303 == login.status_code
    page = client.get("/")
    assert 200 == page.status_code
    assert "Signed in as <b>alice</b>" in page.text


def test_the_browser_stream_refuses_a_made_up_session(client: TestClient) -> None:
    """The stream holds a descriptor per tab: only for sessions this service issued."""
    assert 401 == client.get(STREAM_PATH, headers={"cookie": "session=anything"}).status_code


def test_the_websocket_refuses_a_made_up_session(client: TestClient) -> None:
    """The echo socket is closed before it is accepted."""
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws/echo", headers={"x-session-id": "anything"}) as ws,
    ):
        ws.receive_text()


def test_the_websocket_echoes_for_an_issued_session(client: TestClient, example: Any) -> None:
    with client.websocket_connect(
        "/ws/echo", headers={"x-session-id": example.issue_session_id(KEY)}
    ) as ws:
        ws.send_text("ping")
        assert "ping" == ws.receive_text()


def test_duplicate_session_cookies_are_refused_before_the_app(client: TestClient) -> None:
    """The bypass of the issue: a made-up cookie beside a real one."""
    response = client.get("/api/data", headers={"cookie": "session=anything; session=other"})
    assert 400 == response.status_code
