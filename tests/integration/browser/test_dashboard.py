"""`sessionwarden dashboard` in a real Chromium: records show up by themselves within a second of
their commit, with hashed session ids; without the token every route answers 401."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.client import HTTPConnection
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from playwright.sync_api import expect

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.outputs import Alert, AlertEvidence, Revocation, SessionStarted
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.testing.serve import ServerThread
from sessionwarden.web.dashboard.app import dashboard_app
from sessionwarden.web.dashboard.service import create_app
from sessionwarden.web.dashboard.view import DashboardState
from tests.integration.browser.harness import Screenshots

TOKEN = "dashboard-test-token-" + uuid.uuid4().hex
SALT = "test-salt"


@pytest.fixture
def dashboard(settings_factory: Callable[..., Settings]) -> Iterator[tuple[Settings, str]]:
    settings = settings_factory(log_salt=SALT)
    with ServerThread(create_app(settings, TOKEN)) as server:
        yield settings, server.url


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Transactions:
    """A transactional producer, initialised up front so that committing is quick."""

    def __init__(self, servers: str) -> None:
        self.producer = Producer({
            "bootstrap.servers": servers, "log_level": 3,
            "transactional.id": f"dashboard-test-{uuid.uuid4().hex}",
        })  # fmt: skip
        self.producer.init_transactions(10)

    def commit(self, records: list[tuple[str, str, bytes]]) -> float:
        """Produce (topic, key, value) ``records`` in one transaction; when it committed."""
        self.producer.begin_transaction()
        for topic, key, value in records:
            self.producer.produce(topic, value, key.encode())
        self.producer.commit_transaction(10)
        return time.time()


def shown_at(page: Any, selector: str, text: str, timeout: float = 10) -> float:
    """Wall-clock seconds (the browser's clock) at which ``text`` appeared in ``selector``."""
    handle = page.wait_for_function(
        "([sel, text]) => { const n = document.querySelector(sel);"
        " return n && n.textContent.includes(text) ? Date.now() : false; }",
        arg=[selector, text],
        timeout=timeout * 1000,
        polling="raf",
    )
    return float(handle.json_value()) / 1000


def test_dashboard_shows_a_new_revocation_and_alert_within_a_second_of_commit(
    dashboard: tuple[Settings, str], new_context: Any, shots: Screenshots
) -> None:
    """The live view updates by itself (server push), and never shows a raw session id."""
    settings, url = dashboard
    transactions = Transactions(settings.kafka.bootstrap_servers)
    page = new_context().new_page()
    page.goto(f"{url}/#token={TOKEN}")  # the URL `sessionwarden dashboard` prints
    page.wait_for_url(f"{url}/")
    expect(page.locator("#status")).to_contain_text("live")
    now = time.time()
    session = f"sess-{uuid.uuid4().hex}"
    hashed = SessionHasher(SALT)(session)
    started = SessionStarted(
        event_id=uuid.uuid4(), occurred_at=at(now), user_id="alice", tenant="acme",
        session_id=session, user_type="employee", risk_profile="high", auth_method="password",
        roles=["viewer"], privilege_level=10, idle_timeout_s=300, absolute_timeout_s=3600,
        absolute_deadline=at(now + 3600),
    )  # fmt: skip
    transactions.commit([(settings.topics.audit, "alice", encode(started))])
    expect(page.locator("#live-total")).to_have_text("1 in all")
    shots.take(page, "live-session")

    revocation = Revocation(
        revocation_id=uuid.uuid4(), session_id=session, reason="idle_timeout", user_id="alice",
        tenant="acme", effective_at=at(time.time() - 0.05), emitted_at=at(time.time()),
        roles=["viewer"], permissions=[], policy_version="test",
    )  # fmt: skip
    alert = Alert(
        alert_id=uuid.uuid4(), kind="repeated_expirations", severity="high", user_id="alice",
        tenant="acme", first_seen=at(now - 60), last_seen=at(now), emitted_at=at(time.time()),
        evidence=AlertEvidence(session_ids=[session], counts={"expirations": 5}),
        summary="alice's sessions expired 5 times in 10 minutes",
    )  # fmt: skip
    committed = transactions.commit(
        [
            (settings.topics.revocations, session, encode(revocation)),
            (settings.topics.alerts, "alice", encode(alert)),
        ],
    )
    revocation_seen = shown_at(page, "#recent-table", hashed)
    alert_seen = shown_at(page, "#alert-table", "expired 5 times")
    shots.take(page, "revocation-and-alert")

    assert revocation_seen - committed < 1.0, revocation_seen - committed
    assert alert_seen - committed < 1.0, alert_seen - committed
    expect(page.locator("#alert-table tbody tr").first).to_contain_text("high")
    expect(page.locator("#alert-table tbody tr").first).to_contain_text(hashed)
    expect(page.locator(".reason-idle_timeout")).to_contain_text("idle_timeout")
    expect(page.locator("#live-total")).to_have_text("0 in all")
    expect(page.locator("#latency-summary")).to_contain_text("1 deadline revocations")
    assert session not in page.content(), "raw session ids are never shown"


def request(url: str, path: str, method: str = "GET", **headers: str) -> tuple[int, str]:
    host, port = url.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), timeout=5)
    try:
        body = "token=wrong-token-wrong-token" if method == "POST" else None
        if body:
            headers["content-type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_dashboard_without_its_token_answers_401(
    dashboard: tuple[Settings, str], new_context: Any, shots: Screenshots
) -> None:
    """No route is open: not the page, not its data, not its scripts."""
    _, url = dashboard
    paths = ["/", "/events", "/api/snapshot", "/static/dashboard.js", "/static/dashboard.css"]
    refused = {p: request(url, p)[0] for p in paths}
    wrong_bearer = request(url, "/api/snapshot", authorization="Bearer not-the-token")[0]
    wrong_login = request(url, "/login", "POST")[0]
    right_bearer = request(url, "/api/snapshot", authorization=f"Bearer {TOKEN}")[0]
    page = new_context().new_page()
    response = page.goto(f"{url}/")
    assert response is not None
    shots.take(page, "refused")

    assert dict.fromkeys(paths, 401) == refused
    assert (401, 401, 200) == (wrong_bearer, wrong_login, right_bearer)
    assert 401 == response.status
    expect(page.locator("#why")).to_contain_text("401")
    expect(page.locator("#live-table")).to_have_count(0)


def alert_json(user: str, emitted: float, summary: str, **evidence: Any) -> bytes:
    """An alert as raw JSON: malformed ones cannot be built with the schema's own models."""
    return orjson.dumps({
        "type": "alert", "schema_version": 1, "alert_id": str(uuid.uuid4()),
        "kind": "privilege_escalation", "severity": "high", "user_id": user, "tenant": "acme",
        "first_seen": at(emitted - 60).isoformat(), "last_seen": at(emitted).isoformat(),
        "emitted_at": at(emitted).isoformat(), "summary": summary, "suppressed": 0,
        "evidence": {"session_ids": ["s-1"], "roles": ["admin"], "counts": {}, **evidence},
    })  # fmt: skip


def test_malformed_and_future_dated_alerts_neither_stop_the_page_nor_hide_later_alerts(
    dashboard: tuple[Settings, str], new_context: Any, shots: Screenshots
) -> None:
    """One bad alert used to stop every open page; a number in session_ids lost the rest of its
    batch; 25 alerts dated 9999 hid every later alert."""
    settings, url = dashboard
    transactions = Transactions(settings.kafka.bootstrap_servers)
    page = new_context().new_page()
    page.goto(f"{url}/#token={TOKEN}")
    page.wait_for_url(f"{url}/")
    expect(page.locator("#status")).to_contain_text("live")
    now = time.time()
    alerts = settings.topics.alerts
    transactions.commit([
        (alerts, "mallory", alert_json("mallory", now, "roles as a string", roles="admin")),
        (alerts, "mallory", alert_json("mallory", now, "sessions as a number", session_ids=5)),
        (alerts, "alice", alert_json("alice", now, "first good alert")),
    ])  # fmt: skip
    shown_at(page, "#alert-table", "first good alert")  # the rest of the batch was kept
    far = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
    future = [
        (alerts, f"f{i}", alert_json(f"f{i}", far, f"from the future {i}")) for i in range(25)
    ]
    transactions.commit(future)
    shown_at(page, "#alert-table", "from the future 24")
    later = transactions.commit([(alerts, "bob", alert_json("bob", time.time(), "later alert"))])
    later_seen = shown_at(page, "#alert-table", "later alert")
    shots.take(page, "bad-alerts")

    assert later_seen - later < 1.0, later_seen - later
    expect(page.locator("#alert-table tbody tr").first).to_contain_text("later alert")
    text = page.locator("#alert-table").inner_text()
    assert "roles as a string" not in text and "sessions as a number" not in text


class CraftedState:
    """Snapshots whose alerts the server never validated: the page must cope on its own."""

    def __init__(self, alerts: list[Any]) -> None:
        self.alerts = alerts

    def snapshot(self, now: float) -> dict[str, Any]:
        empty = DashboardState(show_session=str).snapshot(now)
        return {**empty, "alerts": self.alerts}


def test_the_page_renders_the_good_alerts_beside_a_malformed_one(
    new_context: Any, shots: Screenshots
) -> None:
    """The page script type-checks and escapes what it shows, row by row."""
    good = {
        "at": time.time(), "kind": "privilege_escalation", "severity": "high", "user_id": "alice",
        "tenant": "acme", "summary": "good alert",
        "evidence": {"sessions": ["h1"], "more_sessions": 0, "roles": ["admin"], "counts": {}},
    }  # fmt: skip
    bad = {
        **good, "at": "soon", "severity": "high sev-x", "summary": "<b id=injected>bold</b>",
        "user_id": {"nested": 1},
        "evidence": {"sessions": 5, "more_sessions": "x", "roles": "admin", "counts": [1]},
    }  # fmt: skip
    broken_evidence = {**good, "summary": "no evidence", "evidence": None}
    state = CraftedState([good, bad, broken_evidence, {**good, "summary": "last good alert"}])
    with ServerThread(dashboard_app(state, threading.Lock(), TOKEN)) as server:  # type: ignore[arg-type]
        page = new_context().new_page()
        page.goto(f"{server.url}/#token={TOKEN}")
        page.wait_for_url(f"{server.url}/")
        expect(page.locator("#status")).to_contain_text("live")
        shots.take(page, "crafted-alerts")
        rows = page.locator("#alert-table tbody tr")
        expect(rows).to_have_count(4)
        expect(rows.nth(0)).to_contain_text("good alert")
        expect(rows.nth(1)).to_contain_text("<b id=injected>bold</b>")  # as text, not markup
        expect(rows.nth(3)).to_contain_text("last good alert")
        assert 0 == page.locator("#injected").count()
        assert 0 == page.locator(".sev-x").count()
