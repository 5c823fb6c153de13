"""The transmitter's API under hostile callers, over a real socket (uvicorn in a thread, no
Kafka): whatever a caller without a good token does, others are still served."""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ssf.tokens import signer_for
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
