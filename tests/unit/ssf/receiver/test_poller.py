"""The RFC 8936 poller: acknowledges what it took, reports what it refused, retries the rest."""

from __future__ import annotations

import asyncio
import urllib.error
from typing import Any

import orjson
import pytest

from sessionwarden.ssf.receiver.bearer import ClientCredentials, StaticBearer
from sessionwarden.ssf.receiver.poll import PollAnswerError, parse_poll_answer, poll_request
from sessionwarden.ssf.receiver.poller import Poller, PollTarget
from tests.unit.ssf.receiver.sets import FakePublisher, claims, count, receiving, set_token

TOKEN = "poll-token"
TARGET = PollTarget("idp", "https://idp/poll", StaticBearer(TOKEN), 10, 1.0, 100_000)


class FakeTransmitter:
    """Answers each poll with the next batch of SETs, and records the requests."""

    def __init__(self, *batches: dict[str, str]) -> None:
        self.batches = list(batches)
        self.requests: list[dict[str, Any]] = []
        self.down = False

    def __call__(self, url: str, body: bytes, token: str, max_bytes: int) -> bytes:
        assert (TARGET.url, TOKEN) == (url, token)
        self.requests.append(orjson.loads(body))
        if self.down:
            raise OSError("connection refused")
        sets = self.batches.pop(0) if self.batches else {}
        return orjson.dumps({"sets": sets, "moreAvailable": bool(self.batches)})


def test_the_poll_request_carries_acks_errors_and_max_events() -> None:
    body = orjson.loads(poll_request(["a"], {"b": {"err": "invalid_key", "description": "x"}}, 5))
    expected = {"maxEvents": 5, "returnImmediately": True, "ack": ["a"],
                "setErrs": {"b": {"err": "invalid_key", "description": "x"}}}  # fmt: skip
    assert expected == body
    assert {"maxEvents": 5, "returnImmediately": True} == orjson.loads(poll_request([], {}, 5))


@pytest.mark.parametrize(
    "answer",
    [b"[]", b"{", b'{"sets": []}', b'{"sets": {"a": 1}}', b'{"moreAvailable": "yes"}',
     orjson.dumps({"sets": {str(i): "t" for i in range(11)}})],
)  # fmt: skip
def test_an_answer_that_is_not_rfc_8936_is_refused_whole(answer: bytes) -> None:
    with pytest.raises(PollAnswerError):
        parse_poll_answer(answer, 10)


def test_taken_sets_are_acked_and_refused_ones_reported_in_the_next_poll() -> None:
    publisher = FakePublisher()
    ctx = receiving(publisher)
    good, forged = set_token(), set_token(claims(iss="https://evil.example", jti="j-2"))
    transmitter = FakeTransmitter({"j-1": good, "j-2": forged})
    poller = Poller(ctx, TARGET, transmitter)
    asyncio.run(poller.poll_once())
    asyncio.run(poller.poll_once())
    second = transmitter.requests[1]
    assert ["j-1"] == second["ack"]
    assert {"j-2": "invalid_issuer"} == {k: e["err"] for k, e in second["setErrs"].items()}
    assert ["session_revoked"] == [e.type for e in publisher.events]
    assert {"maxEvents": 10, "returnImmediately": True} == transmitter.requests[0]


def test_a_set_delivered_again_is_acked_again_and_not_published_twice() -> None:
    """Our ack may be lost; the transmitter sends the SET again until it is acknowledged."""
    publisher = FakePublisher()
    ctx = receiving(publisher)
    transmitter = FakeTransmitter({"j-1": set_token()}, {"j-1": set_token()})
    poller = Poller(ctx, TARGET, transmitter)
    for _ in range(3):
        asyncio.run(poller.poll_once())
    assert [["j-1"], ["j-1"]] == [r.get("ack") for r in transmitter.requests[1:]]
    assert 1 == len(publisher.events)
    assert 1 == count(ctx, "idp", "duplicate")


def test_a_set_that_cannot_be_published_is_neither_acked_nor_refused() -> None:
    publisher = FakePublisher()
    publisher.fail = True
    ctx = receiving(publisher)
    transmitter = FakeTransmitter({"j-1": set_token()})
    poller = Poller(ctx, TARGET, transmitter)
    asyncio.run(poller.poll_once())
    asyncio.run(poller.poll_once())
    assert "ack" not in transmitter.requests[1] and "setErrs" not in transmitter.requests[1]


def test_a_failed_poll_keeps_the_acks_for_the_next_and_is_counted() -> None:
    ctx = receiving(FakePublisher())
    transmitter = FakeTransmitter({"j-1": set_token()})
    poller = Poller(ctx, TARGET, transmitter)
    asyncio.run(poller.poll_once())
    transmitter.down = True
    assert asyncio.run(poller.poll_once()) is None
    transmitter.down = False
    asyncio.run(poller.poll_once())
    assert ["j-1"] == transmitter.requests[2]["ack"]
    assert 1 == ctx.metrics.poll_failures.labels("idp")._value.get()


def test_a_round_that_raises_does_not_stop_the_poller() -> None:
    """An unexpected error in one round is logged and counted; the poller polls again."""
    ctx = receiving(FakePublisher())
    calls: list[int] = []

    def post(url: str, body: bytes, token: str, max_bytes: int) -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return b'{"sets": {}}'

    poller = Poller(ctx, PollTarget("idp", TARGET.url, TARGET.bearer, 10, 0.01, 1000), post)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        while len(calls) < 2:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(run(), 5))
    assert 1 == ctx.metrics.poll_failures.labels("idp")._value.get()


class TokenEndpoint:
    """Hands out access-1, access-2, ... each valid ``expires_in`` seconds."""

    def __init__(self, expires_in: float = 300) -> None:
        self.expires_in = expires_in
        self.forms: list[str] = []

    def __call__(self, url: str, body: bytes) -> bytes:
        assert "https://idp/token" == url
        self.forms.append(body.decode())
        token = f"access-{len(self.forms)}"
        return orjson.dumps({"access_token": token, "expires_in": self.expires_in})


def test_an_oauth_token_is_fetched_once_and_again_after_a_401() -> None:
    """The transmitter refuses an access token revoked early: one new token, one retry."""
    clock = [0.0]
    endpoint = TokenEndpoint()
    creds = ClientCredentials(
        "https://idp/token", "sw", "s3cret", "ssf.read", lambda: clock[0], endpoint
    )
    sent: list[str] = []

    def post(url: str, body: bytes, token: str, max_bytes: int) -> bytes:
        sent.append(token)
        if token == "access-1" and len(sent) > 1:
            raise urllib.error.HTTPError(url, 401, "Unauthorized", {}, None)  # type: ignore[arg-type]
        return b'{"sets": {}}'

    poller = Poller(
        receiving(FakePublisher()), PollTarget("idp", TARGET.url, creds, 10, 1, 1000), post
    )
    assert asyncio.run(poller.poll_once()) is not None
    assert asyncio.run(poller.poll_once()) is not None
    assert ["access-1", "access-1", "access-2"] == sent
    assert 2 == len(endpoint.forms)
    assert (
        "grant_type=client_credentials&client_id=sw&client_secret=s3cret&scope=ssf.read"
        == endpoint.forms[0]
    )
    assert "s3cret" not in repr(creds)


def test_a_second_401_is_a_failed_round_not_a_loop() -> None:
    """One retry only: a client that lost its rights is counted, then polled again later."""
    endpoint = TokenEndpoint()
    creds = ClientCredentials("https://idp/token", "sw", "s", "", lambda: 0.0, endpoint)
    sent: list[str] = []

    def post(url: str, body: bytes, token: str, max_bytes: int) -> bytes:
        sent.append(token)
        raise urllib.error.HTTPError(url, 401, "Unauthorized", {}, None)  # type: ignore[arg-type]

    ctx = receiving(FakePublisher())
    poller = Poller(ctx, PollTarget("idp", TARGET.url, creds, 10, 1, 1000), post)
    assert asyncio.run(poller.poll_once()) is None
    assert ["access-1", "access-2"] == sent
    assert 1 == ctx.metrics.poll_failures.labels("idp")._value.get()


def test_a_static_token_is_not_retried_after_a_401() -> None:
    sent: list[str] = []

    def post(url: str, body: bytes, token: str, max_bytes: int) -> bytes:
        sent.append(token)
        raise urllib.error.HTTPError(url, 401, "Unauthorized", {}, None)  # type: ignore[arg-type]

    poller = Poller(receiving(FakePublisher()), TARGET, post)
    assert asyncio.run(poller.poll_once()) is None
    assert [TOKEN] == sent
