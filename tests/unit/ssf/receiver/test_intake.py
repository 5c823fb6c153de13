"""One SET, one outcome: accepted as an input event, ignored, refused, or not now."""

from __future__ import annotations

import pytest

from sessionwarden.contracts.inputs import SessionRevoked
from sessionwarden.ssf import vocabulary as v
from sessionwarden.ssf.receiver.intake import Accepted, Replayed, Skipped
from sessionwarden.ssf.receiver.refusal import Refused, Unavailable
from tests.unit.ssf.receiver.sets import NOW, claims, complex_subject, intake, set_token


def test_a_valid_set_is_accepted_as_its_input_event() -> None:
    outcome = intake().receive("idp", set_token(), NOW)
    assert isinstance(outcome, Accepted)
    assert isinstance(outcome.event, SessionRevoked)
    expected = ("u-1", "acme", "s-1", "session_revoked", "ssf:idp")
    event = outcome.event
    assert expected == (event.user_id, event.tenant, event.session_id, event.signal, event.source)


def test_a_set_taken_once_is_a_replay_until_its_window_ends() -> None:
    taken = intake()
    token = set_token()
    outcome = taken.receive("idp", token, NOW)
    assert isinstance(outcome, Accepted)
    taken.settle(outcome.key, published=True)
    with pytest.raises(Replayed) as caught:
        taken.receive("idp", token, NOW + 1)
    assert "invalid_request" == caught.value.code
    with pytest.raises(Refused):  # past the window the SET is too old, not new again
        taken.receive("idp", token, NOW + 640)


def test_a_set_whose_event_was_not_published_may_come_again() -> None:
    taken = intake()
    first = taken.receive("idp", set_token(), NOW)
    assert isinstance(first, Accepted)
    with pytest.raises(Unavailable):  # the same SET while the first is being published
        taken.receive("idp", set_token(), NOW)
    taken.settle(first.key, published=False)
    assert isinstance(taken.receive("idp", set_token(), NOW), Accepted)


def test_an_ignored_set_is_remembered_too() -> None:
    taken = intake()
    token = set_token(claims(v.VERIFICATION, {"state": "abc"}))
    assert Skipped((claims()["iss"], "j-1"), "stream_event") == taken.receive("idp", token, NOW)
    with pytest.raises(Replayed):
        taken.receive("idp", token, NOW)


def test_an_event_the_input_schema_refuses_is_an_invalid_request_and_reserves_nothing() -> None:
    """A user id longer than the schema allows never reaches auth.events."""
    taken = intake()
    token = set_token(claims(subject=complex_subject(user="u" * 5000)))
    with pytest.raises(Refused) as caught:
        taken.receive("idp", token, NOW)
    assert "invalid_request" == caught.value.code
    assert 0 == len(taken.store)


def test_a_full_jti_store_is_unavailable() -> None:
    taken = intake(capacity=1)
    taken.settle(taken.receive("idp", set_token(), NOW).key, published=True)
    with pytest.raises(Unavailable):
        taken.receive("idp", set_token(claims(jti="j-2")), NOW)


def test_a_set_shaped_as_keycloaks_logout_is_accepted() -> None:
    """The claims of a SET Keycloak 26.7.3 pushed on a user's logout (its shape, our keys)."""
    body = {
        "jti": "7054e51b-efa2-9cea-31d7-9016d3108637",
        "iss": claims()["iss"],
        "iat": int(NOW),
        "aud": claims()["aud"],
        "events": {
            v.SESSION_REVOKED: {
                "event_timestamp": int(NOW), "initiating_entity": "user",
                "reason_admin": {"en": "User logout"},
            }
        },
        "sub_id": {
            "format": "complex",
            "user": {"format": "iss_sub", "iss": claims()["iss"],
                     "sub": "8451aa94-fd56-4c37-8b26-100fab60f652"},
            "session": {"format": "opaque", "id": "GdlxgIJAMP9WkeS6AXbTNJwC"},
        },
        "txn": "ac690547-a99d-428b-b41a-f36b0f91c960",
    }  # fmt: skip
    outcome = intake().receive("idp", set_token(body), NOW)
    assert isinstance(outcome, Accepted)
    assert isinstance(outcome.event, SessionRevoked)
    assert ("8451aa94-fd56-4c37-8b26-100fab60f652", "GdlxgIJAMP9WkeS6AXbTNJwC") == (
        outcome.event.user_id,
        outcome.event.session_id,
    )
