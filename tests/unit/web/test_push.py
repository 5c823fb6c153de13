"""The browser revocation stream: who gets which event, and the statuses that stop a browser."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.testclient import TestClient

from sessionwarden.contracts.outputs import Revocation
from sessionwarden.sdk.asgi import constant, session_id_from_cookie
from sessionwarden.sdk.push import (
    SCRIPT_PATH,
    STREAM_PATH,
    Notice,
    PushHub,
    RevokedLike,
    browser_routes,
    session_fingerprint,
)


def revocation(tenant: str, session_id: str, reason: str = "idle_timeout") -> Revocation:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    return Revocation(
        revocation_id=uuid.uuid4(), session_id=session_id, reason=reason, user_id="u",
        tenant=tenant, effective_at=at, emitted_at=at, roles=[], permissions=[],
        policy_version="t",
    )  # fmt: skip


class Known:
    """A lookup over revocations the test declares known."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], Notice] = {}

    def __call__(self, tenant: str, session_id: str) -> RevokedLike | None:
        return self.known.get((tenant, session_id))


@pytest.fixture
def hub() -> PushHub:
    return PushHub(lookup=Known(), max_streams=2)


KNOWN_SESSIONS = {"s1", "s2", "v", *(f"a{n}" for n in range(8))}


def known(tenant: str, session_id: str) -> bool:
    """The service's authenticator: the sessions it issued."""
    return tenant == "acme" and session_id in KNOWN_SESSIONS


def routes(hub: PushHub, **options: Any) -> list[BaseRoute]:
    return browser_routes(
        hub, session_id_from_cookie("s"), constant("acme"), authenticate=known, **options
    )


@pytest.fixture
def client(hub: PushHub) -> Iterator[TestClient]:
    app = Starlette(routes=routes(hub))
    with TestClient(app) as client:
        yield client


def read_event(lines: Iterator[str], skip: tuple[str, ...] = ("session",)) -> dict[str, str]:
    """The fields of the next event that has a name (comments, pings and ``skip`` skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in fields and fields["event"] not in skip:
                return fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    raise AssertionError(f"the stream ended without an event (had {fields})")


def test_hub_delivers_only_to_the_streams_of_that_tenants_session() -> None:
    """A session id is unique only within its tenant: another tenant's twin hears nothing."""

    async def run() -> tuple[list[Notice], list[Notice], list[Notice]]:
        hub = PushHub()
        with (
            hub.subscribe(("acme", "s1")) as mine,
            hub.subscribe(("acme", "s1")) as my_other_tab,
            hub.subscribe(("globex", "s1")) as twin,
        ):
            record = revocation("acme", "s1")
            threading.Thread(target=hub.on_revocation, args=(record,)).start()
            got = [await asyncio.wait_for(mine.get(), 5), await my_other_tab.get()]
            await asyncio.sleep(0)
            return got[:1], got[1:], [twin.get_nowait()] if not twin.empty() else []

    mine, other_tab, twin = asyncio.run(run())
    assert ["idle_timeout"] == [n.reason for n in mine]
    assert ["idle_timeout"] == [n.reason for n in other_tab]
    assert [] == twin


def test_hub_forgets_a_session_when_its_last_stream_closes() -> None:
    """Memory is bounded by open streams, not by sessions ever seen."""

    async def run() -> tuple[int, int]:
        hub = PushHub()
        with hub.subscribe(("acme", "s1")):
            during = hub.streams(("acme", "s1"))
        return during, hub.streams(("acme", "s1"))

    assert (1, 0) == asyncio.run(run())


def test_stream_without_a_session_is_refused_with_401(client: TestClient) -> None:
    """A non-200 status stops the browser from reconnecting; no session, no stream."""
    assert 401 == client.get(STREAM_PATH).status_code


def test_stream_sends_revoked_with_the_reason_when_the_listener_learns_of_it(
    client: TestClient, hub: PushHub
) -> None:
    """The push itself: an open stream receives its session's revocation, then ends."""
    with client.stream("GET", STREAM_PATH, headers={"cookie": "s=s1"}) as response:
        assert "text/event-stream" in response.headers["content-type"]
        assert "no" == response.headers["x-accel-buffering"]
        lines = response.iter_lines()
        assert next(lines).startswith(":")  # the first bytes arrive before any event
        record = revocation("acme", "s1", "absolute_timeout")
        hub.on_revocation(revocation("acme", "s2"))  # another session's: not ours
        hub.on_revocation(record)
        event = read_event(lines)
        assert list(lines) == []  # the stream ends after it
    assert "revoked" == event["event"]
    assert str(record.revocation_id) == event["id"]
    fingerprint = session_fingerprint("acme", "s1")
    assert (
        f'{{"reason":"absolute_timeout","revocation_id":"{record.revocation_id}",'
        f'"session":"{fingerprint}"}}' == (event["data"])
    )


def test_stream_of_an_already_revoked_session_says_so_at_once(
    client: TestClient, hub: PushHub
) -> None:
    """A tab that connects after the revocation still learns why."""
    assert isinstance(hub.lookup, Known)
    hub.lookup.known[("acme", "s1")] = Notice("acme", "s1", "r-1", "logout")
    with client.stream("GET", STREAM_PATH, headers={"cookie": "s=s1"}) as response:
        event = read_event(response.iter_lines())
    assert ("revoked", "r-1") == (event["event"], event["id"])


def test_reconnect_of_a_revoked_session_gets_204_which_stops_the_browser(
    client: TestClient, hub: PushHub
) -> None:
    """EventSource reconnects after a stream ends unless the answer is not 200."""
    assert isinstance(hub.lookup, Known)
    hub.lookup.known[("acme", "s1")] = Notice("acme", "s1", "r-1", "logout")
    response = client.get(STREAM_PATH, headers={"cookie": "s=s1", "Last-Event-ID": "r-1"})
    assert 204 == response.status_code


def test_more_streams_than_allowed_for_one_session_get_429(hub: PushHub) -> None:
    """One cookie cannot open unbounded streams."""
    app = Starlette(routes=routes(hub))
    scope = {
        "type": "http", "method": "GET", "path": STREAM_PATH, "headers": [(b"cookie", b"s=s1")],
        "query_string": b"", "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80),
    }  # fmt: skip

    async def run() -> list[int]:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        with hub.subscribe(("acme", "s1")), hub.subscribe(("acme", "s1")):
            await app(scope, receive, send)
        return [int(m["status"]) for m in sent if m["type"] == "http.response.start"]  # type: ignore[call-overload]

    assert [429] == asyncio.run(run())


def test_the_browser_script_is_served_from_the_package(client: TestClient) -> None:
    """No build step and no CDN: the script comes with the package."""
    response = client.get(SCRIPT_PATH)
    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("text/javascript")
    assert "new EventSource(streamUrl)" in response.text


def test_an_idle_stream_sends_heartbeats_so_proxies_keep_it(hub: PushHub) -> None:
    """A proxy closes a connection that stays silent; the stream speaks every ``ping_s``."""
    with (
        TestClient(Starlette(routes=routes(hub, ping_s=0.05))) as client,
        client.stream("GET", STREAM_PATH, headers={"cookie": "s=s1"}) as response,
    ):
        lines = response.iter_lines()
        comments = [next(lines) for _ in range(10)]  # the first event, then pings
        hub.on_revocation(revocation("acme", "s1"))  # ends the stream
        assert "revoked" == read_event(lines)["event"]
    assert any(line.startswith(": ping") for line in comments), comments


def test_stream_of_a_session_the_service_did_not_issue_is_refused_with_401(
    client: TestClient,
) -> None:
    """A made-up session id must not hold a stream (and a file descriptor) open."""
    response = client.get(STREAM_PATH, headers={"cookie": "s=made-up"})
    assert 401 == response.status_code


def test_stream_with_an_ambiguous_session_is_refused_with_400(client: TestClient) -> None:
    """Two session cookies: the stream must not pick one while the app picks the other."""
    response = client.get(STREAM_PATH, headers={"cookie": "s=s1; s=s2"})
    assert 400 == response.status_code


def stream_scope(session: str) -> dict[str, Any]:
    return {
        "type": "http", "method": "GET", "path": STREAM_PATH, "query_string": b"",
        "headers": [(b"cookie", f"s={session}".encode())], "root_path": "", "scheme": "http",
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
    }  # fmt: skip


class Connection:
    """One browser's request to the stream: stays connected until ``leave``."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self._gone = asyncio.Event()
        self._asked = False

    async def receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def status(self) -> int | None:
        for message in self.sent:
            if message["type"] == "http.response.start":
                return int(message["status"])
        return None

    def header(self, name: bytes) -> bytes | None:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return dict(start["headers"]).get(name)

    def leave(self) -> None:
        self._gone.set()


async def connect_all(hub: PushHub, sessions: list[str]) -> list[Connection]:
    """Every connection at once; returns when each has its answer (all still connected)."""

    async def slow_known(tenant: str, session_id: str) -> bool:
        await asyncio.sleep(0)  # a real authenticator awaits its store: connects interleave
        return True

    app = Starlette(
        routes=browser_routes(
            hub, session_id_from_cookie("s"), constant("acme"), authenticate=slow_known
        )
    )
    connections = [Connection() for _ in sessions]
    tasks = [
        asyncio.create_task(app(stream_scope(s), c.receive, c.send))
        for s, c in zip(sessions, connections, strict=True)
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while any(c.status() is None for c in connections):
        assert loop.time() < deadline, "not every connection was answered"
        await asyncio.sleep(0.01)
    for c in connections:
        c.leave()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    return connections


def test_64_concurrent_connects_of_one_session_get_no_more_streams_than_the_cap() -> None:
    """The cap is checked and taken in one step: connects racing each other cannot all pass
    the check before any of them subscribes."""
    hub = PushHub(lookup=Known(), max_streams=4)
    peak: list[int] = []

    async def run() -> list[Connection]:
        watching = asyncio.create_task(watch_peak(hub, ("acme", "s1"), peak))
        try:
            return await connect_all(hub, ["s1"] * 64)
        finally:
            watching.cancel()

    connections = asyncio.run(run())
    statuses = [c.status() for c in connections]
    assert (4, 60) == (statuses.count(200), statuses.count(429))
    assert all(c.header(b"retry-after") for c in connections if c.status() == 429)
    assert 4 == max(peak)
    assert 0 == hub.streams(("acme", "s1")), "every stream's slot is given back"


async def watch_peak(hub: PushHub, key: tuple[str, str], peak: list[int]) -> None:
    while True:
        peak.append(hub.streams(key))
        await asyncio.sleep(0)


def test_streams_beyond_the_process_cap_get_503_with_retry_after() -> None:
    """Many sessions together cannot take every file descriptor of the service."""
    hub = PushHub(lookup=Known(), max_streams=16, max_total=5)
    connections = asyncio.run(connect_all(hub, [f"s{n}" for n in range(8)]))
    statuses = [c.status() for c in connections]
    assert (5, 3) == (statuses.count(200), statuses.count(503))
    assert all(c.header(b"retry-after") for c in connections if c.status() == 503)
    assert 0 == hub.total_streams()


def test_the_stream_names_its_session_by_a_fingerprint_never_by_the_id(
    client: TestClient,
) -> None:
    """Tabs of different accounts share one BroadcastChannel: the page must know which
    session a message is about, without the session id ever reaching the page's script."""
    with client.stream("GET", STREAM_PATH, headers={"cookie": "s=s1"}) as response:
        event = read_event(response.iter_lines(), skip=())
    fingerprint = session_fingerprint("acme", "s1")
    assert ("session", f'{{"session":"{fingerprint}"}}') == (event["event"], event["data"])
    assert "s1" not in fingerprint
    assert 32 == len(fingerprint)
    assert fingerprint != session_fingerprint("acme", "s2")
    assert fingerprint != session_fingerprint("globex", "s1")


def test_one_user_signed_in_many_times_cannot_take_every_stream() -> None:
    """Sessions are cheap (sign in again); the per-session cap alone lets one user fill the
    process cap and lock every other user's page out. Streams are capped per user as well."""
    hub = PushHub(lookup=Known(), max_streams=4, max_total=64, max_per_owner=6)

    def owner(tenant: str, session_id: str) -> str:
        return "victim" if session_id == "v" else "attacker"

    async def run() -> tuple[list[Connection], list[Connection]]:
        app = Starlette(routes=routes(hub, owner=owner))
        held = [Connection() for _ in range(4 * 8)]
        tasks = [
            asyncio.create_task(app(stream_scope(f"a{n // 4}"), c.receive, c.send))
            for n, c in enumerate(held)
        ]
        victim = [Connection()]
        tasks.append(asyncio.create_task(app(stream_scope("v"), victim[0].receive, victim[0].send)))
        deadline = asyncio.get_running_loop().time() + 10
        while any(c.status() is None for c in [*held, *victim]):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        for c in [*held, *victim]:
            c.leave()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return held, victim

    held, victim = asyncio.run(run())
    statuses = [c.status() for c in held]
    assert (6, 26) == (statuses.count(200), statuses.count(429))
    assert [200] == [c.status() for c in victim]
    assert 0 == hub.total_streams()
    assert 0 == hub.owner_streams("acme", "attacker")
