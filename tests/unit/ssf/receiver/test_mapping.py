"""Verified events become the enforcer's input: which type, whose, which tenant, which signal."""

from __future__ import annotations

from typing import Any

import pytest

from sessionwarden.ssf import vocabulary as v
from sessionwarden.ssf.receiver.mapping import Ignored, event_id, to_input
from sessionwarden.ssf.receiver.refusal import Refused
from sessionwarden.ssf.receiver.verify import SecurityEvent
from tests.unit.ssf.receiver.sets import ISSUER, NOW, complex_subject, trust


def event(
    kind: str, subject: dict[str, Any] | None = None, payload: dict[str, Any] | None = None
) -> SecurityEvent:
    return SecurityEvent(
        ISSUER, "j-1", NOW, kind, payload or {}, complex_subject() if subject is None else subject
    )


def base() -> dict[str, Any]:
    return {
        "event_id": str(event_id(ISSUER, "j-1")),
        "occurred_at": "2027-01-15T08:00:00+00:00",
        "user_id": "u-1",
        "tenant": "acme",
        "source": "ssf:idp",
    }


def test_session_revoked_ends_that_session() -> None:
    expected = {**base(), "type": "session_revoked", "signal": "session_revoked",
                "session_id": "s-1"}  # fmt: skip
    assert expected == to_input(event(v.SESSION_REVOKED), trust())


def test_session_revoked_about_a_user_only_ends_every_session_of_the_user() -> None:
    subject = complex_subject(session=None)
    expected = {**base(), "type": "user_revoked", "signal": "sessions_revoked"}
    assert expected == to_input(event(v.SESSION_REVOKED, subject), trust())


def test_keycloaks_session_all_ends_every_session_of_the_user() -> None:
    """What Keycloak 26.7 sends when an administrator signs a user out (taken from its SET)."""
    subject = {
        "format": "complex",
        "user": {"format": "iss_sub", "iss": ISSUER, "sub": "u-1"},
        "session": {"format": "opaque", "id": "ALL"},
    }
    expected = {**base(), "type": "user_revoked", "signal": "sessions_revoked"}
    assert expected == to_input(event(v.SESSION_REVOKED, subject), trust())


def test_a_federated_peers_session_revoked_ends_every_session_of_the_user() -> None:
    """A peer deployment names its own session (unknown here): with the scope ``user`` the
    user's sessions here end; with the default only that session would, which is none here."""
    expected = {**base(), "type": "user_revoked", "signal": "sessions_revoked"}
    assert expected == to_input(event(v.SESSION_REVOKED), trust(session_revoked_scope="user"))
    assert {**base(), "type": "session_revoked", "signal": "session_revoked",
            "session_id": "s-1"} == to_input(event(v.SESSION_REVOKED), trust())  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "signal"),
    [
        (v.CREDENTIAL_CHANGE, "credential_change"),
        (v.ACCOUNT_DISABLED, "account_disabled"),
        (v.ACCOUNT_PURGED, "account_purged"),
        (v.CREDENTIAL_COMPROMISE, "credential_compromise"),
        (v.SESSIONS_REVOKED, "sessions_revoked"),
    ],
)
def test_account_and_credential_events_end_every_session_of_the_user(
    kind: str, signal: str
) -> None:
    expected = {**base(), "type": "user_revoked", "signal": signal}
    assert expected == to_input(event(kind, complex_subject(session=None)), trust())


def test_a_simple_user_subject_names_the_user() -> None:
    """iss_sub gives its sub, opaque its id, email the address."""
    subjects = [
        {"format": "iss_sub", "iss": ISSUER, "sub": "u-7"},
        {"format": "opaque", "id": "u-7"},
        {"format": "email", "email": "u-7"},
    ]
    for subject in subjects:
        mapped = to_input(event(v.ACCOUNT_DISABLED, subject), trust())
        assert isinstance(mapped, dict)
        assert "u-7" == mapped["user_id"]


def test_an_assurance_level_change_maps_its_level_to_a_risk_profile() -> None:
    payload = {"namespace": "NIST-AAL", "current_level": "aal1", "change_direction": "decrease"}
    expected = {**base(), "type": "risk_change", "risk_profile": "high", "session_id": "s-1"}
    assert expected == to_input(event(v.ASSURANCE_LEVEL_CHANGE, payload=payload), trust())


def test_a_risk_level_change_of_the_user_applies_to_every_session() -> None:
    mapped = to_input(
        event(v.RISK_LEVEL_CHANGE, complex_subject(session=None), {"current_level": "HIGH"}),
        trust(),
    )
    assert {**base(), "type": "risk_change", "risk_profile": "high"} == mapped


def test_a_level_the_map_does_not_list_changes_nothing() -> None:
    payload = {"namespace": "nist-aal", "current_level": "aal3"}
    assert Ignored("unmapped_level") == to_input(
        event(v.ASSURANCE_LEVEL_CHANGE, payload=payload), trust()
    )


def test_stream_events_and_other_types_are_ignored() -> None:
    assert Ignored("stream_event") == to_input(event(v.VERIFICATION), trust())
    assert Ignored("unsupported_event") == to_input(event(v.SESSION_ESTABLISHED), trust())


def test_a_subject_of_another_tenant_is_access_denied() -> None:
    """A transmitter acts on its own tenant only, whatever the SET names."""
    for tenant in ({"format": "opaque", "id": "globex"}, {"format": "email", "email": "a@acme"}):
        subject = {**complex_subject(), "tenant": tenant}
        with pytest.raises(Refused) as caught:
            to_input(event(v.SESSION_REVOKED, subject), trust())
        assert "access_denied" == caught.value.code


def test_the_tenant_is_always_the_transmitters() -> None:
    mapped = to_input(event(v.ACCOUNT_DISABLED, complex_subject(tenant=None)), trust(tenant="t2"))
    assert isinstance(mapped, dict)
    assert "t2" == mapped["tenant"]


def test_a_subject_without_a_user_or_with_an_unreadable_session_is_refused() -> None:
    no_user = {"format": "complex", "session": {"format": "opaque", "id": "s-1"}}
    email_session = {**complex_subject(), "session": {"format": "email", "email": "a@b"}}
    for subject in (no_user, email_session, {"format": "phone_number", "phone_number": "+1"}):
        with pytest.raises(Refused) as caught:
            to_input(event(v.SESSION_REVOKED, subject), trust())
        assert "invalid_request" == caught.value.code


def test_the_event_id_is_the_same_for_the_same_set_and_differs_by_issuer() -> None:
    assert event_id(ISSUER, "j-1") == event_id(ISSUER, "j-1")
    assert event_id(ISSUER, "j-1") != event_id("https://other", "j-1")
    assert event_id("a", "bc") != event_id("ab", "c")


@pytest.mark.parametrize(
    ("received", "occurred"),
    [
        (NOW + 0.4, "2027-01-15T08:00:00.400000+00:00"),  # a login at NOW + 0.3 began before it
        (NOW + 7.0, "2027-01-15T08:00:00.999999+00:00"),  # no later than the second iat names
        (NOW - 0.5, "2027-01-15T08:00:00+00:00"),  # a transmitter clock ahead: never before iat
    ],
)
def test_a_signal_happened_by_the_end_of_its_iat_second_or_when_it_reached_us(
    received: float, occurred: str
) -> None:
    """``iat`` is whole seconds: a session that began within that second, before the signal
    reached us, is no newer than the signal (a user_revoked must end it)."""
    mapped = to_input(event(v.ACCOUNT_DISABLED, complex_subject(session=None)), trust(), received)
    assert isinstance(mapped, dict)
    assert occurred == mapped["occurred_at"]
