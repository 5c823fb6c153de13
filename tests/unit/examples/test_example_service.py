"""The example service (which the drill drives) refuses every session it did not issue: on its
API, its page, its WebSocket and its browser stream, whatever the revocation topic says."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, get_args

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from sessionwarden.contracts.outputs import Revocation, RevocationReason
from sessionwarden.sdk.push import STREAM_PATH, PushHub
from sessionwarden.sdk.revocation_set import RevocationSet
from sessionwarden.testing.example import load_example

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


# -- session lifetime: the service refuses an id the listener may have forgotten ------------

LIFE = 3600.0


class ForgettingListener(QuietListener):
    """A listener over a real RevocationSet, which forgets a revocation ``LIFE`` after it took
    effect (the listener's ``max_lifetime_s``)."""

    max_lifetime_s = LIFE

    def __init__(self) -> None:
        self.set = RevocationSet(LIFE)

    def is_revoked(self, tenant: str, session_id: str) -> bool:
        return self.set.contains(tenant, session_id)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def revoke(listener: ForgettingListener, session_id: str, at: float) -> None:
    when = datetime.fromtimestamp(at, UTC)
    record = Revocation(
        tenant="acme", user_id="victim", revocation_id=uuid.uuid4(), session_id=session_id,
        reason="logout", effective_at=when, emitted_at=when, roles=["viewer"], permissions=[],
        policy_version="v1",
    )  # fmt: skip
    listener.set.add(record, at)


def test_a_revoked_session_stays_refused_after_the_listener_forgets_its_revocation(
    example: ModuleType,
) -> None:
    """The listener forgets a revocation max_lifetime_s after it took effect; by then the
    service must refuse the id by itself, or a logged-out id works again a day later."""
    clock, listener = Clock(), ForgettingListener()
    app = example.create_app(listener, PushHub(), None, "acme", session_key=KEY, clock=clock)
    client = TestClient(app, follow_redirects=False)
    sid = client.post("/login", data={"user": "victim", "risk": "high"}).cookies["session"]
    revoke(listener, sid, clock.now)
    assert 401 == client.get("/api/data", headers={"x-session-id": sid}).status_code
    clock.now += LIFE + 1
    assert 1 == listener.set.expire(clock.now)  # forgotten, as the listener does
    assert 401 == client.get("/api/data", headers={"x-session-id": sid}).status_code
    page = client.get("/", headers={"cookie": f"session={sid}"})
    assert (303, "/login") == (page.status_code, page.headers["location"])
    assert 401 == client.get(STREAM_PATH, headers={"cookie": f"session={sid}"}).status_code
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws/echo", headers={"x-session-id": sid}) as ws,
    ):
        ws.receive_text()


def test_an_issued_session_is_served_until_its_lifetime_and_not_after(
    example: ModuleType,
) -> None:
    """No revocation at all: the id's own age ends it, at the listener's max_lifetime_s."""
    clock = Clock()
    app = example.create_app(ForgettingListener(), PushHub(), None, "acme", session_key=KEY,
                             clock=clock)  # fmt: skip
    client = TestClient(app)
    sid = example.issue_session_id(KEY, "alice", "acme", "low", clock.now)
    clock.now += LIFE - 1
    assert 200 == client.get("/api/data", headers={"x-session-id": sid}).status_code
    clock.now += 2
    assert 401 == client.get("/api/data", headers={"x-session-id": sid}).status_code


def test_an_id_of_another_tenant_or_tampered_with_is_refused(example: ModuleType) -> None:
    """The id is signed over its tenant, user, risk and issue time: none can be changed."""
    client = TestClient(example.create_app(QuietListener(), PushHub(), None, "acme",
                                           session_key=KEY))  # fmt: skip
    other = example.issue_session_id(KEY, "alice", "globex")
    assert 401 == client.get("/api/data", headers={"x-session-id": other}).status_code
    mine = example.issue_session_id(KEY, "alice", "acme", issued_at=time.time() - 10)
    body, mac = mine.split(".")
    fields = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).split(b"\x1f")
    fields[0] = str(int(time.time())).encode()  # younger than it is
    forged = base64.urlsafe_b64encode(b"\x1f".join(fields)).decode().rstrip("=") + "." + mac
    assert 200 == client.get("/api/data", headers={"x-session-id": mine}).status_code
    assert 401 == client.get("/api/data", headers={"x-session-id": forged}).status_code


# -- logout: published for any issued session, on any instance ------------------------------


class Recording:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    async def close(self, *args: Any, **kwargs: Any) -> None:
        pass


def logouts(publisher: Recording) -> list[tuple[str, str, str]]:
    return [
        (e["tenant"], e["user_id"], e["session_id"])
        for e in publisher.events
        if e["type"] == "logout"
    ]


def test_logout_on_another_instance_or_after_a_restart_publishes_the_logout(
    example: ModuleType,
) -> None:
    """The sign-in happened on one instance; the logout lands on another (or the same one,
    restarted): the logout is published all the same, for the id's user and tenant."""
    first, second = Recording(), Recording()
    signed_in = TestClient(
        example.create_app(QuietListener(), PushHub(), first, "acme", session_key=KEY),
        follow_redirects=False,
    )
    sid = signed_in.post("/login", data={"user": "victim", "risk": "high"}).cookies["session"]
    other = TestClient(
        example.create_app(QuietListener(), PushHub(), second, "acme", session_key=KEY),
        follow_redirects=False,
    )
    other.cookies.set("session", sid)
    response = other.post("/logout")
    assert (303, "/login") == (response.status_code, response.headers["location"])
    assert [("acme", "victim", sid)] == logouts(second)


def test_logout_is_published_however_many_sign_ins_came_after(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later sign-ins (free for anyone) cannot push a victim's session out of the service's
    memory and turn its logout into a no-op."""
    monkeypatch.setattr(example, "MAX_SESSIONS", 2, raising=False)
    publisher = Recording()
    app = example.create_app(QuietListener(), PushHub(), publisher, "acme", session_key=KEY)
    victim = TestClient(app, follow_redirects=False)
    sid = victim.post("/login", data={"user": "victim", "risk": "high"}).cookies["session"]
    attacker = TestClient(app, follow_redirects=False)
    for n in range(5):
        assert 303 == attacker.post("/login", data={"user": f"a{n}", "risk": "low"}).status_code
    victim.post("/logout")
    assert [("acme", "victim", sid)] == logouts(publisher)


def test_logout_of_a_made_up_or_foreign_id_publishes_nothing(example: ModuleType) -> None:
    publisher = Recording()
    client = TestClient(
        example.create_app(QuietListener(), PushHub(), publisher, "acme", session_key=KEY),
        follow_redirects=False,
    )
    for sid in ("anything", example.issue_session_id(b"o" * 32, "victim")):
        client.cookies.set("session", sid)
        assert 303 == client.post("/logout").status_code
    assert [] == publisher.events


def test_sign_ins_of_one_client_are_rate_limited_and_others_are_not(example: ModuleType) -> None:
    """One address cannot mint sessions (and Kafka events) without bound."""
    clock = Clock()
    app = example.create_app(QuietListener(), PushHub(), None, "acme", session_key=KEY,
                             clock=clock, login_rate=(1.0, 3.0))  # fmt: skip
    one = TestClient(app, follow_redirects=False, client=("10.0.0.1", 5000))
    other = TestClient(app, follow_redirects=False, client=("10.0.0.2", 5000))
    form = {"user": "a", "risk": "low"}
    assert [303, 303, 303] == [one.post("/login", data=form).status_code for _ in range(3)]
    refused = one.post("/login", data=form)
    assert (429, "1") == (refused.status_code, refused.headers["retry-after"])
    assert 303 == other.post("/login", data=form).status_code
    clock.now += 1.0
    assert 303 == one.post("/login", data=form).status_code


def test_sign_out_is_never_rate_limited_and_a_repeat_publishes_nothing(
    example: ModuleType,
) -> None:
    """Sign-ins from the victim's address (a shared NAT) are exhausted: its logout still goes
    out; clicking twice publishes it once."""
    publisher = Recording()
    app = example.create_app(QuietListener(), PushHub(), publisher, "acme", session_key=KEY,
                             login_rate=(0.001, 2.0))  # fmt: skip
    victim = TestClient(app, follow_redirects=False)
    sid = victim.post("/login", data={"user": "victim", "risk": "high"}).cookies["session"]
    neighbour = TestClient(app, follow_redirects=False)
    assert 303 == neighbour.post("/login", data={"user": "n", "risk": "low"}).status_code
    assert 429 == neighbour.post("/login", data={"user": "n", "risk": "low"}).status_code
    victim.cookies.set("session", sid)
    assert 303 == victim.post("/logout").status_code
    victim.cookies.set("session", sid)
    assert 303 == victim.post("/logout").status_code
    assert [("acme", "victim", sid)] == logouts(publisher)


def test_an_open_websocket_is_closed_when_its_sessions_lifetime_runs_out(
    example: ModuleType,
) -> None:
    """A socket opened just before the id's lifetime ends does not outlive it (the listener
    may forget the session's revocation from then on)."""
    clock = Clock()
    sid = example.issue_session_id(KEY, "alice", "acme", "low", clock.now)
    clock.now = int(clock.now) + LIFE - 0.2  # 0.2 s left
    app = example.create_app(ForgettingListener(), PushHub(), None, "acme", session_key=KEY,
                             clock=clock)  # fmt: skip
    client = TestClient(app)
    with (
        client.websocket_connect("/ws/echo", headers={"x-session-id": sid}) as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.send_text("ping")
        assert "ping" == ws.receive_text()
        ws.receive_text()
    assert 4401 == closed.value.code


def test_every_revocation_reason_has_a_label(example: ModuleType) -> None:
    """A user whose session ended is told why in words, for every reason the enforcer gives."""
    assert set(get_args(RevocationReason)) <= set(example.REASONS)
