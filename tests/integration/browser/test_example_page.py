"""The example service's page in a real Chromium: it logs itself out at its session's deadline,
with no click, shows why, takes its other tabs along, and leaves other sessions alone."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from typing import Any

import pytest
from playwright.sync_api import expect

from sessionwarden.config.settings import Settings
from sessionwarden.policy import load_policy
from sessionwarden.sdk.push import STREAM_PATH
from sessionwarden.testing.example import Service
from tests.integration.browser.harness import (
    ExampleService,
    Screenshots,
    ended_state,
    sign_in,
    wait_connected,
    wait_ended,
)
from tests.integration.harness import REPO, Collector, EnforcerProcess, parse_ts, wait_until

ENDED_TEXT = "Your session ended: idle timeout"
POLICY = REPO / "tests/fixtures/policies/browser.toml"  # idle 3 s at medium risk, 8 s at low


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def enforcer(settings: Settings) -> Iterator[EnforcerProcess]:
    """A real enforcer with browser.toml: idle 3 s at medium risk, 8 s at low."""
    with EnforcerProcess(settings, policy=POLICY) as process:
        yield process


@pytest.fixture
def stack(
    settings: Settings, enforcer: EnforcerProcess
) -> Iterator[tuple[ExampleService, Collector]]:
    """The enforcer, a reader of its revocations, and the example service."""
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    service = ExampleService(settings, POLICY)
    try:
        enforcer.wait_assigned()
        service.start()
        yield service, revocations
    finally:
        service.stop()
        revocations.close()


def deadline_of(revocations: Collector, session_id: str) -> tuple[float, dict[str, Any]]:
    doc = wait_until(
        lambda: next(iter(revocations.docs(session_id=session_id)), None),
        10,
        "the session's revocation on Kafka",
    )
    return parse_ts(doc["effective_at"]), doc


def test_page_logs_itself_out_within_a_second_of_its_deadline_and_says_why(
    stack: tuple[ExampleService, Collector], new_context: Any, shots: Screenshots
) -> None:
    """The UI layer: no click, no API call; the page clears its data, shows the reason, goes
    back to the login page, and its second tab follows."""
    service, revocations = stack
    context = new_context()
    page, session_id = sign_in(context, service.url, "alice", "medium")
    expect(page.locator("#balance")).to_have_text("Balance: 12,804.17")
    second = context.new_page()
    second.goto(f"{service.url}/")
    wait_connected(second)
    expect(second.locator("#balance")).to_be_visible()
    shots.take(page, "signed-in")

    ended = wait_ended(page, timeout=15)
    shots.take(page, "ended")
    deadline, revocation = deadline_of(revocations, session_id)
    other = wait_ended(second, timeout=5)
    shots.take(second, "second-tab-ended")

    assert ("idle_timeout", "idle_timeout") == (revocation["reason"], ended["reason"])
    assert 0 <= ended["at"] / 1000 - deadline < 1.0, ended["at"] / 1000 - deadline
    assert 0 <= other["at"] / 1000 - deadline < 1.0, other["at"] / 1000 - deadline
    for tab in (page, second):
        expect(tab.locator("#sessionwarden-ended")).to_have_text(ENDED_TEXT)
        expect(tab.locator("#balance")).to_have_count(0)
        expect(tab.locator("#statement")).to_have_count(0)
    page.wait_for_url(f"{service.url}/login?ended=idle_timeout", timeout=10_000)
    expect(page.get_by_role("status")).to_have_text("Your session ended: idle timeout.")
    shots.take(page, "login-page")
    assert 401 == page.request.get(f"{service.url}/api/data").status


def test_a_live_sessions_page_is_untouched_when_another_session_ends(
    stack: tuple[ExampleService, Collector], new_context: Any, shots: Screenshots
) -> None:
    """Revocations reach only the streams of their own session."""
    service, _ = stack
    ending_page, ending_sid = sign_in(new_context(), service.url, "carol", "medium")  # idle 3 s
    live_page, _ = sign_in(new_context(), service.url, "bob", "low")  # idle 8 s, signed in later

    wait_ended(ending_page, timeout=15)
    live_state = ended_state(live_page)
    live_status = live_page.request.get(f"{service.url}/api/data").status
    shots.take(ending_page, "other-session-ended")
    shots.take(live_page, "live-session")

    assert ending_sid in service.applied
    assert live_state is None
    assert 200 == live_status
    expect(live_page.locator("#sessionwarden-ended")).to_have_count(0)
    expect(live_page.locator("#balance")).to_have_text("Balance: 12,804.17")
    assert f"{service.url}/" == live_page.url


def test_the_page_follows_its_session_across_a_restart_of_the_service(
    settings: Settings, enforcer: EnforcerProcess, new_context: Any, shots: Screenshots
) -> None:
    """The browser reconnects by itself to the restarted service (new listener, new hub) and
    is still logged out at its deadline."""
    enforcer.wait_assigned()
    first = ExampleService(settings, POLICY).start()
    try:
        page, session_id = sign_in(new_context(), first.url, "dave", "low")  # idle 8 s
    finally:
        first.stop()
    page.wait_for_function("!window.sessionwarden.connected", timeout=10_000)
    with ExampleService(settings, POLICY, port=first.server.port) as second:
        wait_connected(page, timeout=10)
        shots.take(page, "reconnected")
        ended = wait_ended(page, timeout=15)
        shots.take(page, "ended-after-restart")
    assert ("idle_timeout", "stream") == (ended["reason"], ended["via"])
    assert session_id in second.applied
    expect(page.locator("#sessionwarden-ended")).to_have_text(ENDED_TEXT)


def test_ending_one_account_leaves_another_accounts_tab_in_the_same_browser_alone(
    stack: tuple[ExampleService, Collector], new_context: Any, shots: Screenshots
) -> None:
    """Two accounts in one browser (one context, one BroadcastChannel): when A's session ends,
    A's tab logs out and tells its tabs; C's tab, of a live session, stays as it is."""
    service, _ = stack
    context = new_context()
    a_page, a_sid = sign_in(context, service.url, "anna", "medium")  # idle 3 s
    c_page, c_sid = sign_in(context, service.url, "carl", "low")  # idle 8 s, signed in later
    assert a_sid != c_sid
    a_fingerprint = a_page.evaluate("window.sessionwarden.session")
    c_fingerprint = c_page.evaluate("window.sessionwarden.session")
    assert a_fingerprint and c_fingerprint and a_fingerprint != c_fingerprint
    assert a_sid not in a_fingerprint
    shots.take(c_page, "two-accounts")

    ended = wait_ended(a_page, timeout=15)
    # A's tab goes to the login page 2.5 s after it ended: long after any message it sent.
    a_page.wait_for_url(f"{service.url}/login?ended=idle_timeout", timeout=10_000)
    c_state = ended_state(c_page)
    c_status = c_page.request.get(f"{service.url}/api/data").status  # the jar holds C's cookie
    shots.take(c_page, "other-account-after")

    assert ("idle_timeout", "stream") == (ended["reason"], ended["via"])
    assert a_sid in service.applied and c_sid not in service.applied
    assert c_state is None, c_state
    assert 200 == c_status
    expect(c_page.locator("#sessionwarden-ended")).to_have_count(0)
    expect(c_page.locator("#balance")).to_have_text("Balance: 12,804.17")
    assert f"{service.url}/" == c_page.url


class StreamHog:
    """Another client holding revocation streams of sessions of its own (signed in for free),
    over raw sockets, until ``release``."""

    def __init__(self, base: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.held: list[socket.socket] = []

    def sign_in(self, user: str) -> str:
        conn = HTTPConnection(self.host, self.port, timeout=5)
        conn.request("POST", "/login", body=f"user={user}&risk=low",
                     headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
        cookie = conn.getresponse().getheader("set-cookie") or ""
        conn.close()
        return cookie.split(";")[0]

    def hold(self, cookie: str) -> bytes:
        held = socket.create_connection((self.host, self.port), timeout=5)
        held.sendall(f"GET {STREAM_PATH} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                     f"Cookie: {cookie}\r\n\r\n".encode())  # fmt: skip
        status = held.recv(200).split(b"\r\n")[0]
        self.held.append(held)
        return status

    def release(self) -> None:
        for held in self.held:
            held.close()
        self.held.clear()


@pytest.fixture
def service(settings: Settings) -> Iterator[ExampleService]:
    """The example service alone (no enforcer: nobody's session ends by itself)."""
    with ExampleService(settings, POLICY) as service:
        yield service


def test_a_page_stays_signed_in_while_the_stream_caps_are_full_and_reconnects_after(
    service: ExampleService, new_context: Any, shots: Screenshots
) -> None:
    """Another client fills the service's stream cap with sessions of its own: a stream refused
    for capacity (503) is no revocation. The page keeps its data and its session, and opens
    its stream once capacity frees (after Retry-After)."""
    service.hub.max_total = 3
    hog = StreamHog(service.url)
    statuses = [hog.hold(hog.sign_in(f"hog{n}")) for n in range(3)]
    assert all(b" 200 " in s for s in statuses), statuses
    assert 3 == service.hub.total_streams()
    try:
        page = new_context().new_page()
        page.goto(f"{service.url}/login")
        page.fill("input[name=user]", "victim")
        page.click("button[type=submit]")
        page.wait_for_url(f"{service.url}/")
        page.wait_for_function(
            "window.sessionwarden && window.sessionwarden.waiting"
            " && window.sessionwarden.waiting.status === 503",
            timeout=10_000,
        )
        shots.take(page, "waiting-for-capacity")
        assert ended_state(page) is None
        expect(page.locator("#balance")).to_have_text("Balance: 12,804.17")
        expect(page.locator("#sessionwarden-ended")).to_have_count(0)
        assert 200 == page.request.get(f"{service.url}/api/data").status
    finally:
        hog.release()
    wait_until(lambda: service.hub.total_streams() == 0, 10, "the held streams to be released")
    wait_connected(page, timeout=30)  # Retry-After (10 s) plus jitter
    shots.take(page, "reconnected")
    assert ended_state(page) is None
    assert f"{service.url}/" == page.url
    expect(page.locator("#balance")).to_have_text("Balance: 12,804.17")


def test_a_page_whose_stream_is_refused_with_401_still_logs_itself_out(
    settings: Settings, new_context: Any, shots: Screenshots
) -> None:
    """The other side: the service no longer knows the session (here it restarted with a new
    session key), so its stream answers 401; that ends the page, as before."""
    first = ExampleService(settings, POLICY).start()
    try:
        page, _ = sign_in(new_context(), first.url, "erin", "low")
    finally:
        first.stop()
    policy = load_policy(POLICY)
    with Service(settings, policy, "acme", port=first.server.port, session_key=b"n" * 32):
        ended = wait_ended(page, timeout=20)
        shots.take(page, "ended-401")
    assert ("ended", "closed") == (ended["reason"], ended["via"])
    expect(page.locator("#balance")).to_have_count(0)
