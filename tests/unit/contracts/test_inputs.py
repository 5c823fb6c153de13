"""Input models on auth.events: exact wire bytes, round trips and field rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from pydantic import BaseModel, ValidationError

from sessionwarden.contracts.codec import decode_auth_event, encode
from sessionwarden.contracts.inputs import (
    AUTH_EVENT_ADAPTER,
    AUTH_EVENT_TYPES,
    Activity,
    Login,
    Logout,
    RiskChange,
    RoleChange,
    SessionRevoked,
    UserRevoked,
)

EVENT_ID = UUID("0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d")
OCCURRED = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
AUTH_TIME = datetime(2026, 1, 2, 3, 4, 0, tzinfo=UTC)

LOGIN = Login(
    event_id=EVENT_ID,
    occurred_at=OCCURRED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    user_type="employee",
    risk_profile="standard",
    roles=["viewer", "billing"],
    permissions=["invoices:read"],
    auth_method="password+totp",
    auth_time=AUTH_TIME,
    source_ip="203.0.113.7",
    user_agent="Mozilla/5.0",
)
ACTIVITY = Activity(
    event_id=EVENT_ID,
    occurred_at=OCCURRED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    action="GET",
    resource="/api/v1/invoices/42",
)
LOGOUT = Logout(
    event_id=EVENT_ID, occurred_at=OCCURRED, user_id="u-1842", tenant="acme", session_id="s-7f3e"
)
ROLE_CHANGE = RoleChange(
    event_id=EVENT_ID,
    occurred_at=OCCURRED,
    user_id="u-1842",
    tenant="acme",
    roles_granted=["admin"],
    roles_removed=["billing"],
    actor="it-ops",
)

LOGIN_BYTES = (
    b'{"type":"login","schema_version":1,"event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d",'
    b'"occurred_at":"2026-01-02T03:04:05.123456Z","user_id":"u-1842","tenant":"acme",'
    b'"session_id":"s-7f3e","user_type":"employee","risk_profile":"standard",'
    b'"roles":["viewer","billing"],"permissions":["invoices:read"],'
    b'"auth_method":"password+totp","auth_time":"2026-01-02T03:04:00Z",'
    b'"source_ip":"203.0.113.7","user_agent":"Mozilla/5.0"}'
)
ACTIVITY_BYTES = (
    b'{"type":"activity","schema_version":1,"event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d",'
    b'"occurred_at":"2026-01-02T03:04:05.123456Z","user_id":"u-1842","tenant":"acme",'
    b'"session_id":"s-7f3e","action":"GET","resource":"/api/v1/invoices/42"}'
)
LOGOUT_BYTES = (
    b'{"type":"logout","schema_version":1,"event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d",'
    b'"occurred_at":"2026-01-02T03:04:05.123456Z","user_id":"u-1842","tenant":"acme",'
    b'"session_id":"s-7f3e"}'
)
ROLE_CHANGE_BYTES = (
    b'{"type":"role_change","schema_version":1,'
    b'"event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d",'
    b'"occurred_at":"2026-01-02T03:04:05.123456Z","user_id":"u-1842","tenant":"acme",'
    b'"roles_granted":["admin"],"roles_removed":["billing"],"actor":"it-ops"}'
)

SESSION_REVOKED = SessionRevoked(
    event_id=EVENT_ID,
    occurred_at=OCCURRED,
    user_id="u-1842",
    tenant="acme",
    source="ssf:idp.example",
    session_id="s-7f3e",
    signal="session_revoked",
)
USER_REVOKED = UserRevoked(
    event_id=EVENT_ID,
    occurred_at=OCCURRED,
    user_id="u-1842",
    tenant="acme",
    source="keycloak:main",
    signal="credential_compromise",
)
RISK_CHANGE = RiskChange(
    event_id=EVENT_ID,
    occurred_at=OCCURRED,
    user_id="u-1842",
    tenant="acme",
    source="ssf:idp.example",
    risk_profile="high",
)
_HEAD = (
    b'"schema_version":1,"event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d",'
    b'"occurred_at":"2026-01-02T03:04:05.123456Z","user_id":"u-1842","tenant":"acme",'
)
SESSION_REVOKED_BYTES = (
    b'{"type":"session_revoked",' + _HEAD + b'"source":"ssf:idp.example",'
    b'"session_id":"s-7f3e","signal":"session_revoked"}'
)
USER_REVOKED_BYTES = (
    b'{"type":"user_revoked",' + _HEAD + b'"source":"keycloak:main",'
    b'"signal":"credential_compromise"}'
)
RISK_CHANGE_BYTES = (
    b'{"type":"risk_change",' + _HEAD + b'"source":"ssf:idp.example",'
    b'"risk_profile":"high","session_id":null}'
)

PINNED: list[tuple[BaseModel, bytes]] = [
    (LOGIN, LOGIN_BYTES),
    (ACTIVITY, ACTIVITY_BYTES),
    (LOGOUT, LOGOUT_BYTES),
    (ROLE_CHANGE, ROLE_CHANGE_BYTES),
    (SESSION_REVOKED, SESSION_REVOKED_BYTES),
    (USER_REVOKED, USER_REVOKED_BYTES),
    (RISK_CHANGE, RISK_CHANGE_BYTES),
]


@pytest.mark.parametrize(("model", "wire"), PINNED, ids=lambda value: type(value).__name__)
def test_input_encodes_to_pinned_wire_bytes(model: BaseModel, wire: bytes) -> None:
    """Other consumers of auth.events depend on these exact bytes; a change breaks the contract."""
    assert wire == encode(model)


@pytest.mark.parametrize(("model", "wire"), PINNED, ids=lambda value: type(value).__name__)
def test_pinned_wire_bytes_decode_to_the_model(model: BaseModel, wire: bytes) -> None:
    """The pinned bytes must be accepted as they are written by producers."""
    assert model == decode_auth_event(wire)


@pytest.mark.parametrize("model", [model for model, _ in PINNED], ids=lambda m: m.type)
def test_every_input_round_trips_through_the_codec(model: BaseModel) -> None:
    """Replaying or forwarding an input must not change it."""
    assert model == decode_auth_event(encode(model))


def test_non_utc_offset_is_normalised_to_utc() -> None:
    """Deadlines are computed in UTC; an offset must shift the instant, not be dropped."""
    wire = ACTIVITY_BYTES.replace(b"2026-01-02T03:04:05.123456Z", b"2026-01-01T05:00:00+05:00")

    event = decode_auth_event(wire)

    assert datetime(2026, 1, 1, 0, 0, tzinfo=UTC) == event.occurred_at
    assert UTC is event.occurred_at.tzinfo
    assert b'"occurred_at":"2026-01-01T00:00:00Z"' in encode(event)


def test_constructing_with_an_offset_stores_utc() -> None:
    """Python callers get the same UTC normalisation as decoded records."""
    plus_two = timezone(timedelta(hours=2))

    event = Logout.model_validate(
        {**LOGOUT.model_dump(), "occurred_at": datetime(2026, 1, 1, 2, 0, tzinfo=plus_two)}
    )

    assert datetime(2026, 1, 1, 0, 0, tzinfo=UTC) == event.occurred_at
    assert UTC is event.occurred_at.tzinfo


def test_naive_datetime_is_rejected_in_python() -> None:
    """A timestamp without an offset is ambiguous and must never reach the timeout logic."""
    with pytest.raises(ValidationError) as caught:
        Logout.model_validate({**LOGOUT.model_dump(), "occurred_at": datetime(2026, 1, 1)})

    assert [("occurred_at",)] == [error["loc"] for error in caught.value.errors()]


def test_models_are_frozen() -> None:
    """Events are shared between processing stages; mutation would corrupt state silently."""
    with pytest.raises(ValidationError):
        ACTIVITY.action = "DELETE"  # type: ignore[misc]


def test_type_tag_defaults_so_python_callers_need_not_repeat_it() -> None:
    """Each model knows its own tag; the default is what goes on the wire."""
    assert ("login", "activity", "logout", "role_change") == (
        LOGIN.type,
        ACTIVITY.type,
        LOGOUT.type,
        ROLE_CHANGE.type,
    )
    assert (
        "login",
        "activity",
        "logout",
        "role_change",
        "session_revoked",
        "user_revoked",
        "risk_change",
    ) == AUTH_EVENT_TYPES


def test_optional_fields_take_their_defaults() -> None:
    """Producers may omit optional fields; the defaults are the documented ones."""
    login = Login.model_validate(
        {k: v for k, v in LOGIN.model_dump().items() if k not in {"source_ip", "user_agent"}}
    )
    change = RoleChange(
        event_id=EVENT_ID, occurred_at=OCCURRED, user_id="u", tenant="t", actor="it-ops"
    )
    activity = Activity(
        event_id=EVENT_ID, occurred_at=OCCURRED, user_id="u", tenant="t", session_id="s", action="a"
    )

    assert (None, None) == (login.source_ip, login.user_agent)
    assert ([], []) == (change.roles_granted, change.roles_removed)
    assert "" == activity.resource
    assert 1 == activity.schema_version


@pytest.mark.parametrize("value", ["Employee", "1st", "", "a" * 33, "svc account", "employee\n"])
def test_profile_slugs_outside_the_pattern_are_rejected(value: str) -> None:
    """user_type and risk_profile select policy; only short lowercase slugs are meaningful."""
    with pytest.raises(ValidationError) as caught:
        Login.model_validate({**LOGIN.model_dump(), "user_type": value})

    assert ["string_pattern_mismatch"] == [error["type"] for error in caught.value.errors()]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_id", ""),
        ("tenant", "t" * 129),
        ("session_id", "s" * 257),
        ("auth_method", "m" * 33),
        ("source_ip", "1" * 46),
        ("user_agent", "u" * 513),
        ("permissions", ["p"] * 257),
        ("roles", ["r" * 129]),
    ],
)
def test_login_field_bounds_are_enforced(field: str, value: object) -> None:
    """Every string and list is bounded so hostile input cannot inflate memory."""
    with pytest.raises(ValidationError) as caught:
        Login.model_validate({**LOGIN.model_dump(), field: value})

    assert field == caught.value.errors()[0]["loc"][0]


def test_adapter_selects_the_model_by_type() -> None:
    """The discriminator routes each record to its model without trying the others."""
    assert Logout is type(AUTH_EVENT_ADAPTER.validate_python(LOGOUT.model_dump()))


def test_source_is_optional_and_left_out_when_absent() -> None:
    """Existing producers send no source; their records keep their exact bytes."""
    assert LOGOUT.source is None
    assert b'"source"' not in encode(LOGOUT)
    with_source = LOGOUT.model_copy(update={"source": "keycloak:main"})
    assert b'"tenant":"acme","source":"keycloak:main","session_id"' in encode(with_source)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signal", "password_reset"),
        ("source", " ssf:idp"),
        ("source", "x" * 129),
        ("source", "ssf:\nidp"),
    ],
)
def test_signal_and_source_are_held_to_their_rules(field: str, value: str) -> None:
    """A signal outside the six kinds, or a source with whitespace at an end, a control
    character or past 128 characters, is refused."""
    doc = {**SESSION_REVOKED.model_dump(), field: value}
    with pytest.raises(ValidationError):
        SessionRevoked.model_validate(doc)


def test_risk_change_profile_is_a_profile_slug() -> None:
    """The risk profile follows the login's rule (a short lowercase slug)."""
    with pytest.raises(ValidationError):
        RiskChange.model_validate({**RISK_CHANGE.model_dump(), "risk_profile": "HIGH"})
    assert (
        "s-1"
        == RiskChange.model_validate({**RISK_CHANGE.model_dump(), "session_id": "s-1"}).session_id
    )
