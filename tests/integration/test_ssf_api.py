"""The transmitter's HTTP API over a real socket (uvicorn, no Kafka): who may do what, hostile
bodies, a paused stream keeping its events, and setErrs ending a SET for good."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ssf.tokens import signer_for
from sessionwarden.ssf.transmitter.app import AppContext, transmitter_app
from sessionwarden.ssf.transmitter.auth import Authorizer, parse_token_file, token_hash
from sessionwarden.ssf.transmitter.sets import SetMaker
from sessionwarden.ssf.transmitter.store import Store
from sessionwarden.ssf.vocabulary import SESSION_REVOKED, VERIFICATION
from sessionwarden.testing.serve import ServerThread
from sessionwarden.testing.ssf import SsfClient, write_key_and_tokens

ISS = "https://sw.example"


class Clock:
    """The API's clock, moved by the test (the minimum verification interval)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    key_file, _, _ = write_key_and_tokens(tmp_path)
    lines = [f"rp {token_hash('rp-token')} ssf.manage", f"ro {token_hash('ro-token')} ssf.read"]
    lines.append(f"other {token_hash('other-token')} ssf.manage,ssf.read")
    store = Store(tmp_path / "state")
    maker = SetMaker(ISS, signer_for(key_file.read_bytes()), "k1", SessionHasher("s"))
    ctx = AppContext(
        store=store, maker=maker, authorize=Authorizer(parse_token_file("\n".join(lines))),
        clock=CLOCK, on_change=lambda _: None, key_id="k1", default_subjects="ALL",
        keep_s=3600, poll_wait_s=0.3, max_streams=3, allow_http_push=False,
    )  # fmt: skip
    with ServerThread(transmitter_app(ctx)) as server:
        yield server.url, store
    store.close()


def test_only_the_metadata_and_keys_are_public_and_scopes_are_enforced(
    api: tuple[str, Store],
) -> None:
    """Reading needs ssf.read, changing needs ssf.manage, and no client sees another's stream."""
    base, _ = api
    with urllib.request.urlopen(f"{base}/.well-known/ssf-configuration") as answer:
        assert 200 == answer.status
    assert 401 == SsfClient(base, "nope").call("GET", "/ssf/streams")[0]
    rp, ro, other = (SsfClient(base, t) for t in ("rp-token", "ro-token", "other-token"))
    stream_id = rp.create_poll([SESSION_REVOKED])
    assert (200, stream_id) == (rp.call("GET", f"/ssf/streams?stream_id={stream_id}")[0], stream_id)
    status, doc = ro.call("POST", "/ssf/streams", {"delivery": {"method": "urn:ietf:rfc:8936"}})
    assert (403, "insufficient_scope") == (status, doc["error"])
    assert 404 == other.call("GET", f"/ssf/streams?stream_id={stream_id}")[0]
    assert 404 == other.call("DELETE", f"/ssf/streams?stream_id={stream_id}")[0]
    assert 404 == other.call("POST", f"/ssf/poll/{stream_id}", {})[0]
    assert (200, []) == other.call("GET", "/ssf/streams")


def test_hostile_bodies_get_clear_errors(api: tuple[str, Store]) -> None:
    """Oversized, malformed and unknown input is refused with a reason, and nothing changes."""
    base, store = api
    rp = SsfClient(base, "rp-token")
    status, doc = rp.call("POST", "/ssf/streams", {"delivery": {"method": "x"}, "pad": "y" * 70000})
    assert 413 == status
    request = urllib.request.Request(
        f"{base}/ssf/streams", data=b"{not json", method="POST",
        headers={"Authorization": "Bearer rp-token"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert 400 == caught.value.code
    stream_id = rp.create_poll([SESSION_REVOKED])
    status, doc = rp.call(
        "POST", "/ssf/subjects:add", {"stream_id": stream_id, "subject": {"format": "opaque"}}
    )
    assert (400, "subject: the opaque format has exactly the members id") == (
        status,
        doc["description"],
    )
    status, doc = rp.call("POST", f"/ssf/poll/{stream_id}", {"maxEvents": "all"})
    assert (400, "invalid_request") == (status, doc["err"])
    for _ in range(2):
        rp.create_poll([SESSION_REVOKED])
    assert 409 == rp.call("POST", "/ssf/streams", {"delivery": {"method": "urn:ietf:rfc:8936"}})[0]
    assert 3 == len(store.streams())


def test_a_paused_stream_keeps_its_events_and_set_errs_end_one_for_good(
    api: tuple[str, Store],
) -> None:
    """Paused: polls return nothing, nothing is lost; enabled again: the events are there."""
    base, store = api
    rp = SsfClient(base, "rp-token")
    stream_id = rp.create_poll([SESSION_REVOKED])
    status, doc = rp.call("POST", "/ssf/status", {"stream_id": stream_id, "status": "paused"})
    assert (200, "paused") == (status, doc["status"])
    assert 204 == rp.call("POST", "/ssf/verify", {"stream_id": stream_id, "state": "a"})[0]
    store.enqueue([(stream_id, "j-2", b"tok.en.2")], CLOCK.now, 3600)
    assert {"sets": {}, "moreAvailable": False} == rp.poll(stream_id, returnImmediately=True)
    rp.call("POST", "/ssf/status", {"stream_id": stream_id, "status": "enabled"})
    answer = rp.poll(stream_id, maxEvents=1)
    assert answer["moreAvailable"]
    ((jti, token),) = answer["sets"].items()
    from sessionwarden.ssf.tokens import read_unverified

    assert {VERIFICATION: {"state": "a"}} == read_unverified(token)[1]["events"]
    answer = rp.poll(stream_id, ack=[jti], maxEvents=10, returnImmediately=True)
    assert {"j-2": "tok.en.2"} == answer["sets"]
    errs = {"j-2": {"err": "invalid_key", "description": "unknown kid"}}
    assert {"sets": {}, "moreAvailable": False} == rp.poll(
        stream_id, setErrs=errs, returnImmediately=True
    )
    assert {"delivered": 1, "refused": 1} == store.states(stream_id)
    # Disabled: held events are dropped, new verification requests queue nothing.
    store.enqueue([(stream_id, "j-3", b"tok.en.3")], CLOCK.now, 3600)
    rp.call("POST", "/ssf/status", {"stream_id": stream_id, "status": "disabled"})
    CLOCK.now += 10  # past the minimum verification interval
    assert 204 == rp.call("POST", "/ssf/verify", {"stream_id": stream_id})[0]
    assert {"delivered": 1, "refused": 1, "dropped": 1} == store.states(stream_id)
    assert 204 == rp.call("DELETE", f"/ssf/streams?stream_id={stream_id}")[0]
    assert [] == store.streams()


def test_introspection_vouches_for_tokens_caches_them_and_fails_closed() -> None:
    """RFC 7662 against a real endpoint: the transmitter authenticates itself, trusts only an
    active token with an SSF scope, asks once per cache period, and refuses when it is down."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs

    from sessionwarden.ssf.transmitter.auth import READ, Introspector, Principal

    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["content-length"])).decode())
            token = form["token"][0]
            asked.append(token)
            expected = "Basic " + base64.b64encode(b"tx:s3cret").decode()
            active = self.headers.get("authorization") == expected and token == "good"
            body = b'{"active": true, "client_id": "rp", "scope": "ssf.read"}'
            body = body if active else b'{"active": false}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/introspect"
    clock = Clock()
    try:
        introspect = Introspector(url, "tx", "s3cret", clock)
        assert Principal("rp", frozenset({READ})) == introspect("good")
        assert None is introspect("bad")
        assert Principal("rp", frozenset({READ})) == introspect("good")
        assert ["good", "bad"] == asked  # the second "good" came from the cache
        assert None is Introspector(url, "tx", "wrong", clock)("good")
    finally:
        server.shutdown()
        server.server_close()
    clock.now += 31
    assert None is introspect("good")  # the endpoint is gone: refused, not trusted from cache


def test_a_stream_asks_for_its_retention_and_its_paused_events_expire_then(
    api: tuple[str, Store],
) -> None:
    """event_retention_seconds: shown back, at most the transmitter's, applied to the queue."""
    base, store = api
    rp = SsfClient(base, "rp-token")
    body = {"delivery": {"method": "urn:ietf:rfc:8936"}, "event_retention_seconds": 600}
    status, doc = rp.call("POST", "/ssf/streams", body)
    assert (201, 600) == (status, doc["event_retention_seconds"]), doc
    stream_id = doc["stream_id"]
    status, doc = rp.call(
        "PATCH", "/ssf/streams", {"stream_id": stream_id, "event_retention_seconds": 3601}
    )
    assert (400, "event_retention_seconds is at most 3600") == (status, doc["description"])
    default = rp.create_poll([SESSION_REVOKED])
    assert 3600 == rp.call("GET", f"/ssf/streams?stream_id={default}")[1]["event_retention_seconds"]
    CLOCK.now += 60  # past any earlier test's verification
    for sid in (stream_id, default):
        assert 200 == rp.call("POST", "/ssf/status", {"stream_id": sid, "status": "paused"})[0]
        assert 204 == rp.call("POST", "/ssf/verify", {"stream_id": sid})[0]
    assert 1 == store.expire(CLOCK.now + 601, 3600)
    assert ({"expired": 1}, {"pending": 1}) == (store.states(stream_id), store.states(default))
