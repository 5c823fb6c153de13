"""The transmitter's API under hostile callers, over a real socket (uvicorn in a thread, no
Kafka): whatever a caller without a good token does, others are still served."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ssf.tokens import signer_for
from sessionwarden.ssf.transmitter import app
from sessionwarden.ssf.transmitter.app import AppContext, transmitter_app
from sessionwarden.ssf.transmitter.auth import (
    Authorizer,
    Introspector,
    Principal,
    parse_token_file,
    token_hash,
)
from sessionwarden.ssf.transmitter.sets import SetMaker
from sessionwarden.ssf.transmitter.store import Store
from sessionwarden.ssf.vocabulary import VERIFICATION
from sessionwarden.testing.serve import ServerThread
from sessionwarden.testing.ssf import SsfClient, write_key_and_tokens

ISS = "https://sw.example"
Authorize = Callable[[str | None], Principal | None]


def tokens(slow_s: float = 0.0) -> Authorize:
    """rp-token (both scopes) in the token file; any other token goes to an introspection
    endpoint that takes ``slow_s`` to say it is not active."""
    table = parse_token_file(f"rp {token_hash('rp-token')} ssf.manage,ssf.read")

    def send(request: urllib.request.Request, timeout_s: float) -> bytes:
        time.sleep(slow_s)
        return b'{"active": false}'

    return Authorizer(table, Introspector("https://idp.example/i", "tx", "s", time.time, send=send))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "state")
    yield opened
    opened.close()


@pytest.fixture
def serve(tmp_path: Path, store: Store) -> Iterator[Callable[..., str]]:
    key_file, _, _ = write_key_and_tokens(tmp_path)
    maker = SetMaker(ISS, signer_for(key_file.read_bytes()), "k1", SessionHasher("s"))
    servers: list[ServerThread] = []

    def start(authorize: Authorize | None = None, **options: object) -> str:
        fields: dict[str, object] = {
            "store": store, "maker": maker, "authorize": authorize or tokens(),
            "clock": time.time, "on_change": lambda _: None, "key_id": "k1",
            "default_subjects": "ALL", "keep_s": 3600.0, "poll_wait_s": 0.3, "max_streams": 10,
            "allow_http_push": False,
        }  # fmt: skip
        fields.update(options)
        servers.append(ServerThread(transmitter_app(AppContext(**fields))).start())  # type: ignore[arg-type]
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


def timed_get(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as answer:
        answer.read()
    return time.monotonic() - started


def test_a_slow_token_check_of_one_caller_holds_back_no_other(serve: Callable[..., str]) -> None:
    """Made-up tokens checked by a slow introspection endpoint must not stall the API: the
    check runs off the event loop, a few at once (503 beyond), so the workers stay free."""
    base = serve(tokens(slow_s=1.5))
    answers: list[int] = []

    def attack(n: int) -> None:
        answers.append(SsfClient(base, f"made-up-{n}").call("GET", "/ssf/streams")[0])

    threads = [threading.Thread(target=attack, args=(n,)) for n in range(60)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # the attacker's requests are in their token checks
    assert timed_get(f"{base}/.well-known/ssf-configuration") < 0.5
    started = time.monotonic()
    assert 200 == SsfClient(base, "rp-token").call("GET", "/ssf/streams")[0]
    assert time.monotonic() - started < 0.5
    for thread in threads:
        thread.join()
    assert {401, 503} == set(answers)  # refused, or asked to come back: never let in


def test_a_poll_refusing_a_thousand_sets_is_one_log_line_and_one_commit(
    serve: Callable[..., str], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """setErrs is the receiver's to fill: 1,000 entries must not become 1,000 warnings (nor
    1,000 synchronous commits holding the store from the Kafka reader and the pushers)."""
    rp = SsfClient(serve(), "rp-token")
    sid = rp.create_poll([])
    now = time.time()
    store.enqueue([(sid, f"j{n}", b"a.b.c") for n in range(1000)], now, 3600.0)
    errs = {f"j{n}": {"err": "invalid_key"} for n in range(500)}
    errs.update({f"made-up-{n}": {"err": "invalid_request"} for n in range(500)})
    acks = [f"j{n}" for n in range(500, 1000)]
    with caplog.at_level(logging.WARNING, "sessionwarden.ssf.transmitter.app"):
        answer = rp.poll(sid, ack=acks, setErrs=errs, returnImmediately=True)
    assert {"sets": {}, "moreAvailable": False} == answer
    assert {"refused": 500, "delivered": 500} == store.states(sid)
    lines = [r for r in caplog.records if r.name == "sessionwarden.ssf.transmitter.app"]
    assert 1 == len(lines)
    assert (1000, ["invalid_key", "invalid_request"]) == (lines[0].count, lines[0].errs)  # type: ignore[attr-defined]


def two_clients() -> Authorize:
    table = parse_token_file(
        f"rp {token_hash('rp-token')} ssf.manage,ssf.read\n"
        f"other {token_hash('other-token')} ssf.manage,ssf.read"
    )
    return Authorizer(table, None)


def at_once(calls: list[Callable[[], int]]) -> list[int]:
    """Every call from a thread of its own, released together: their statuses."""
    start, answers = threading.Barrier(len(calls)), []

    def run(call: Callable[[], int]) -> None:
        start.wait()
        answers.append(call())

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(answers)


POLL_STREAM = {"delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": []}


def test_one_client_cannot_take_every_stream(serve: Callable[..., str], store: Store) -> None:
    """ssf_tx_max_streams was one count for all: one client creating streams until it was
    reached left every other client's receiver without a stream."""
    url = serve(two_clients(), max_streams=5, max_streams_per_client=2)
    rp, other = SsfClient(url, "rp-token"), SsfClient(url, "other-token")
    statuses = [rp.call("POST", "/ssf/streams", POLL_STREAM)[0] for _ in range(4)]
    assert [201, 201, 409, 409] == statuses
    assert [201, 201] == [other.call("POST", "/ssf/streams", POLL_STREAM)[0] for _ in range(2)]
    assert (2, 2) == (len(store.streams("rp")), len(store.streams("other")))


def test_streams_created_at_once_stay_within_the_caps(
    serve: Callable[..., str], store: Store
) -> None:
    """The count and the insert were two steps with an await between: requests at once all
    passed the count before any stream was stored."""
    rp = SsfClient(serve(max_streams=3, max_streams_per_client=3), "rp-token")
    statuses = at_once([lambda: rp.call("POST", "/ssf/streams", POLL_STREAM)[0]] * 12)
    assert [201] * 3 + [409] * 9 == statuses
    assert 3 == len(store.streams())


def test_subjects_added_at_once_stay_within_a_streams_cap(
    serve: Callable[..., str], store: Store
) -> None:
    """Likewise for a stream's subjects (10,000 by default): adds at once passed the count
    together and the stream went beyond it."""
    rp = SsfClient(serve(max_subjects=3), "rp-token")
    sid = rp.create_poll([])

    def add(n: int) -> Callable[[], int]:
        subject = {"format": "opaque", "id": f"user-{n}"}
        return lambda: rp.call("POST", "/ssf/subjects:add", {"stream_id": sid, "subject": subject})[
            0
        ]

    assert [200] * 3 + [400] * 9 == at_once([add(n) for n in range(12)])
    assert 3 == len(store.subjects()[sid])
    held = next(iter(store.subjects()[sid]))  # one it holds, added again: a no-op, not full
    assert 200 == rp.call("POST", "/ssf/subjects:add", {"stream_id": sid, "subject": held})[0]


def racing_a_delete(rp: SsfClient, sid: str, n: int) -> list[Callable[[], int]]:
    """A DELETE of the stream and, at the same time, updates, status changes and a subject."""

    def call(method: str, path: str, doc: object = None) -> Callable[[], int]:
        return lambda: rp.call(method, path, doc)[0]

    subject = {"format": "opaque", "id": f"u{n}"}
    calls = [call("DELETE", f"/ssf/streams?stream_id={sid}")]
    for i in range(4):
        calls.append(call("PATCH", "/ssf/streams", {"stream_id": sid, "description": f"d{i}"}))
        calls.append(call("POST", "/ssf/subjects:add", {"stream_id": sid, "subject": subject}))
        calls.append(call("POST", "/ssf/status", {"stream_id": sid, "status": "paused"}))
    return calls


def test_a_stream_deleted_while_updated_or_given_subjects_stays_deleted(
    serve: Callable[..., str], store: Store
) -> None:
    """Each request found the stream, then wrote: an update written after the delete brought
    the stream back, a subject added after it stayed behind with no stream. Now the write
    finds the stream in its own transaction or answers 404."""
    rp = SsfClient(serve(), "rp-token")
    statuses: set[int] = set()
    for n in range(10):
        sid = rp.create_poll([])
        statuses.update(at_once(racing_a_delete(rp, sid, n)))
        assert (None, False) == (store.stream(sid), sid in store.subjects()), f"round {n}"
    assert statuses <= {200, 204, 404}


def another_writer(path: Path, stream_id: str, **fields: object) -> None:
    """Another writer of the state file (another request, another connection): it reads the
    stream's document, changes ``fields`` and writes it back in one transaction of its own."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")  # waits while a transaction holds the file
        (doc,) = db.execute("SELECT doc FROM streams WHERE stream_id = ?", (stream_id,)).fetchone()
        doc = orjson.dumps({**orjson.loads(doc), **fields})
        db.execute("UPDATE streams SET doc = ? WHERE stream_id = ?", (doc, stream_id))
        db.execute("COMMIT")
    finally:
        db.close()


RACES = {
    "an update racing a status": (
        "changed", ("PATCH", "/ssf/streams", {"description": "new"}),
        {"status": "disabled"}, ("disabled", "new", False),
    ),
    "a status racing an update": (
        "with_status", ("POST", "/ssf/status", {"status": "paused"}),
        {"description": "new"}, ("paused", "new", False),
    ),
    "a verification racing a status": (
        "verification_state", ("POST", "/ssf/verify", {}),
        {"status": "disabled"}, ("disabled", None, True),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("hooked", "first", "racing", "expected"), RACES.values(), ids=list(RACES))
def test_a_change_made_between_a_requests_read_and_write_is_kept(
    serve: Callable[..., str],
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    hooked: str,
    first: tuple[str, str, dict[str, object]],
    racing: dict[str, object],
    expected: tuple[str, str | None, bool],
) -> None:
    """Each request read the stream, changed it and wrote the whole document back: a status
    set between its read and its write was undone (a disabled stream enabled again), an
    update lost. Another writer changes the stream from inside the request's change: at once
    while the request holds nothing, else as soon as the request's transaction ends."""
    rp = SsfClient(serve(), "rp-token")
    sid = rp.create_poll([])
    written = threading.Event()

    def race() -> None:
        another_writer(store.path, sid, **racing)
        written.set()

    racer = threading.Thread(target=race)
    real = getattr(app, hooked)

    def between_read_and_write(*args: object, **kwargs: object) -> object:
        racer.start()
        written.wait(0.5)  # the other writer waits for the file while this request holds it
        return real(*args, **kwargs)

    monkeypatch.setattr(app, hooked, between_read_and_write)
    method, path, doc = first
    status, answer = rp.call(method, path, {"stream_id": sid, **doc})
    racer.join(10)
    assert (status, written.is_set()) == (204 if path == "/ssf/verify" else 200, True), answer
    found = store.stream(sid)
    assert found is not None
    assert expected == (found.status, found.description, found.last_verification_at is not None)


def changing_every_part(rp: SsfClient, sid: str, n: int) -> list[Callable[[], int]]:
    """Updates, a status and a verification of the stream at once, each changing another part."""

    def call(method: str, path: str, doc: dict[str, object]) -> Callable[[], int]:
        return lambda: rp.call(method, path, {"stream_id": sid, **doc})[0]

    return [
        call("PATCH", "/ssf/streams", {"description": f"d{n}"}),
        call("PATCH", "/ssf/streams", {"events_requested": [VERIFICATION]}),
        call("PATCH", "/ssf/streams", {"event_retention_seconds": 60}),
        call("POST", "/ssf/status", {"status": "disabled", "reason": f"r{n}"}),
        call("POST", "/ssf/verify", {}),
    ]


def test_updates_status_changes_and_a_verification_at_once_are_all_kept(
    serve: Callable[..., str], store: Store
) -> None:
    """The same race, many requests at once: every change is in the document stored at the
    end, whatever order they were applied in."""
    rp = SsfClient(serve(), "rp-token")
    for n in range(8):
        sid = rp.create_poll([])
        assert [200, 200, 200, 200, 204] == at_once(changing_every_part(rp, sid, n))
        found = store.stream(sid)
        assert found is not None
        kept = (found.description, found.events_requested, found.retention_s, found.status)
        assert (f"d{n}", (VERIFICATION,), 60.0, "disabled") == kept, f"round {n}"
        assert (f"r{n}", True) == (found.reason, found.last_verification_at is not None)


def test_verifications_at_once_pass_the_minimum_interval_once(
    serve: Callable[..., str], store: Store
) -> None:
    """The interval was checked against the stream read before the write: requests at once
    all passed it, each queuing a verification event."""
    rp = SsfClient(serve(), "rp-token")
    sid = rp.create_poll([])

    def verify() -> int:
        return rp.call("POST", "/ssf/verify", {"stream_id": sid})[0]

    assert [204] + [429] * 5 == at_once([verify] * 6)
    assert {"pending": 1} == store.states(sid)
