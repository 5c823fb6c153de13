"""The RFC 8935 push endpoint: authenticated, bounded, and answering with RFC 8935 codes."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from sessionwarden.ssf.receiver.app import PUSH_PATH, push_app
from tests.unit.ssf.receiver.sets import (
    FakePublisher,
    claims,
    count,
    receiving,
    set_token,
    trust,
    unsigned,
)

TOKEN = "push-token-of-the-idp-0123456789"
OTHER = "push-token-of-the-other-transmitter"
SET_TYPE = {"Content-Type": "application/secevent+jwt"}


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def ctx(publisher: FakePublisher) -> Any:
    return receiving(publisher, idp=trust(), other=trust("other", tenant="globex"))


@pytest.fixture
def client(ctx: Any) -> TestClient:
    return TestClient(push_app(ctx, {TOKEN: "idp", OTHER: "other"}, max_body_bytes=4096))


def push(client: TestClient, body: str | bytes, token: str = TOKEN, **headers: str) -> Any:
    return client.post(
        PUSH_PATH, content=body, headers={**SET_TYPE, "Authorization": f"Bearer {token}", **headers}
    )


def test_a_valid_set_is_accepted_with_202_once_its_event_is_published(
    client: TestClient, publisher: FakePublisher, ctx: Any
) -> None:
    answer = push(client, set_token())
    assert (202, b"") == (answer.status_code, answer.content)
    assert [("session_revoked", "acme")] == [(e.type, e.tenant) for e in publisher.events]
    assert 1 == count(ctx, "idp", "accepted")


@pytest.mark.parametrize("token", ["", "wrong-token-wrong-token", TOKEN[:-1]])
def test_a_request_without_a_transmitters_token_is_authentication_failed(
    client: TestClient, publisher: FakePublisher, token: str
) -> None:
    """Every path, not only the push endpoint, wants the token first."""
    for path in (PUSH_PATH, "/", "/metrics"):
        answer = client.post(
            path, content=set_token(), headers={"Authorization": f"Bearer {token}"}
        )
        assert 401 == answer.status_code
        assert "authentication_failed" == answer.json()["err"]
    assert [] == publisher.events


def test_each_refusal_answers_400_with_its_code_and_publishes_nothing(
    client: TestClient, publisher: FakePublisher, ctx: Any
) -> None:
    cases = {
        "invalid_request": unsigned(),
        "invalid_key": set_token(kid="elsewhere"),
        "invalid_issuer": set_token(claims(iss="https://evil.example", jti="j-3")),
        "invalid_audience": set_token(claims(aud="https://other.example", jti="j-4")),
    }
    for code, body in cases.items():
        answer = push(client, body)
        assert (400, code) == (answer.status_code, answer.json()["err"]), code
        assert answer.json()["description"]
        assert 1 == count(ctx, "idp", "refused", code)
    assert [] == publisher.events


def test_a_replayed_set_is_refused(client: TestClient, publisher: FakePublisher, ctx: Any) -> None:
    token = set_token()
    assert 202 == push(client, token).status_code
    answer = push(client, token)
    assert (400, "invalid_request") == (answer.status_code, answer.json()["err"])
    assert 1 == len(publisher.events)
    assert 1 == count(ctx, "idp", "refused", "invalid_request")


def test_a_set_of_another_tenant_is_access_denied(
    client: TestClient, publisher: FakePublisher
) -> None:
    """The other transmitter's token with a SET naming acme: its tenant is globex."""
    answer = push(client, set_token(), token=OTHER)
    assert (400, "access_denied") == (answer.status_code, answer.json()["err"])
    assert [] == publisher.events


def test_a_body_that_is_too_large_or_not_a_set_is_refused_unread(
    client: TestClient, publisher: FakePublisher, ctx: Any
) -> None:
    assert 413 == push(client, "a" * 5000).status_code
    answer = push(client, set_token(), **{"Content-Type": "application/json"})
    assert (400, "invalid_request") == (answer.status_code, answer.json()["err"])
    assert 400 == push(client, "é".encode()).status_code
    assert 3 == ctx.metrics.requests_refused.labels("invalid_request")._value.get()
    assert [] == publisher.events


def test_a_broker_that_does_not_take_the_event_is_503_and_the_retry_is_accepted(
    client: TestClient, publisher: FakePublisher
) -> None:
    publisher.fail = True
    answer = push(client, set_token())
    assert (503, "1") == (answer.status_code, answer.headers["retry-after"])
    publisher.fail = False
    assert 202 == push(client, set_token()).status_code
    assert 1 == len(publisher.events)
