"""The codec: encoder options, and how every kind of bad input maps to a DecodeError."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest

from sessionwarden.contracts.codec import (
    MAX_DEAD_LETTER_BYTES,
    MAX_OUTPUT_RECORD_BYTES,
    MAX_RECORD_BYTES,
    DecodeError,
    decode_alert,
    decode_audit_event,
    decode_auth_event,
    decode_dead_letter,
    decode_revocation_record,
    encode,
    encode_dict,
)
from sessionwarden.contracts.inputs import Login
from sessionwarden.contracts.outputs import (
    MAX_DETAIL_CHARS,
    MAX_RAW_B64_CHARS,
    Alert,
    AlertEvidence,
    DeadLetter,
    Revocation,
)
from sessionwarden.errors import SessionwardenError

Decoder = Callable[[bytes | None], Any]

EXPECTED_TAGS = (
    "'login', 'activity', 'logout', 'role_change', 'session_revoked', 'user_revoked', 'risk_change'"
)
MOMENT = datetime(2026, 1, 2, tzinfo=UTC)

LOGIN_FIELDS: dict[str, Any] = {
    "type": "login",
    "schema_version": 1,
    "event_id": "0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d",
    "occurred_at": "2026-01-02T03:04:05Z",
    "user_id": "u-1842",
    "tenant": "acme",
    "session_id": "s-7f3e",
    "user_type": "employee",
    "risk_profile": "standard",
    "roles": ["viewer"],
    "permissions": ["invoices:read"],
    "auth_method": "password",
    "auth_time": "2026-01-02T03:04:00Z",
}

ALERT_WIRE = (
    b'{"type":"alert","user_id":"u","tenant":"t",'
    b'"alert_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f","kind":"concurrent_sessions",'
    b'"severity":"low","first_seen":"2026-01-02T03:04:05Z","last_seen":"2026-01-02T03:04:05Z",'
    b'"evidence":{},"summary":"","emitted_at":"2026-01-02T03:04:05Z"}'
)


def login_bytes(**changes: Any) -> bytes:
    """A valid login record with some fields replaced (a value of ... removes the field)."""
    fields = {**LOGIN_FIELDS, **changes}
    return orjson.dumps({key: value for key, value in fields.items() if value is not ...})


def rejection(data: bytes | None, decode: Decoder = decode_auth_event) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(data)
    return caught.value


def outcome(error: DecodeError) -> tuple[str, str]:
    return (error.reason, error.detail)


def state(error: DecodeError) -> tuple[object, ...]:
    return (error.reason, error.detail, error.raw, error.topic, error.partition, error.offset)


def worst_text(length: int) -> str:
    """Text whose JSON encoding is as long as possible: every character becomes a \\u escape."""
    return "\x01" * length


# --- encoding ------------------------------------------------------------------------------


def test_encode_matches_encode_dict_of_the_python_dump() -> None:
    """Hot paths build plain dicts; they must produce byte-identical records to the models."""
    model = decode_auth_event(login_bytes())

    assert encode_dict(model.model_dump(mode="python")) == encode(model)


def test_datetimes_encode_as_rfc3339_with_z_and_microseconds_only_when_present() -> None:
    """Consumers parse these strings; the format is fixed by ORJSON_OPTIONS."""
    record = {
        "whole": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "fraction": datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC),
        "id": UUID("0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d"),
    }

    assert (
        b'{"whole":"2026-01-02T03:04:05Z","fraction":"2026-01-02T03:04:05.120000Z",'
        b'"id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d"}'
    ) == encode_dict(record)


def test_valid_login_decodes_to_the_login_model() -> None:
    """The fast path returns the concrete model chosen by the type tag."""
    event = decode_auth_event(login_bytes())

    assert isinstance(event, Login)
    assert "s-7f3e" == event.session_id


# --- rejections on auth.events -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        pytest.param(
            login_bytes(occurred_at="2026-01-02T03:04:05"),
            "schema_violation",
            "occurred_at: Input should have timezone info",
            id="naive-timestamp",
        ),
        pytest.param(
            login_bytes(type="signup"),
            "unknown_type",
            f"type: unknown tag 'signup'; expected one of {EXPECTED_TAGS}",
            id="unknown-type",
        ),
        pytest.param(
            login_bytes(type=...),
            "unknown_type",
            f"type: missing; expected one of {EXPECTED_TAGS}",
            id="missing-type",
        ),
        pytest.param(
            login_bytes(user_id="u" * 10_000),
            "schema_violation",
            "user_id: String should have at most 128 characters",
            id="oversized-user-id",
        ),
        pytest.param(
            login_bytes(roles=[f"r{i}" for i in range(1000)]),
            "schema_violation",
            "roles: array of 1000 items; no field allows more than 256",
            id="oversized-roles-list",
        ),
        pytest.param(
            login_bytes(session_id=...),
            "schema_violation",
            "session_id: Field required",
            id="missing-session-id",
        ),
        pytest.param(
            login_bytes(nickname="bob"),
            "schema_violation",
            "nickname: Extra inputs are not permitted",
            id="extra-field",
        ),
        pytest.param(
            b"<html>not json</html>",
            "undecodable",
            "Invalid JSON: expected value at line 1 column 1",
            id="not-json",
        ),
        pytest.param(
            orjson.dumps([LOGIN_FIELDS]),
            "undecodable",
            "expected a JSON object, got array",
            id="json-array",
        ),
        pytest.param(
            b'{"type":"logout","user_id":"\xff\xfe"}',
            "undecodable",
            "not valid UTF-8: invalid start byte at byte 28",
            id="invalid-utf8",
        ),
        pytest.param(
            b"",
            "undecodable",
            "Invalid JSON: EOF while parsing a value at line 1 column 0",
            id="empty",
        ),
        pytest.param(None, "undecodable", "record has no value (tombstone)", id="tombstone"),
    ],
)
def test_bad_input_is_rejected_with_reason_and_detail(
    data: bytes | None, reason: str, detail: str
) -> None:
    """The reason picks the dead-letter bucket and the detail tells an operator what to fix."""
    assert (reason, detail) == outcome(rejection(data))


def test_oversized_record_is_rejected_before_parsing() -> None:
    """A huge record must cost nothing to reject, even when it is not valid JSON."""
    data = b"{" * (MAX_RECORD_BYTES + 1)

    expected = ("oversized", f"record is {MAX_RECORD_BYTES + 1} bytes; the limit is 65536")
    assert expected == outcome(rejection(data))


def test_record_of_exactly_the_size_limit_is_accepted() -> None:
    """The limit is inclusive, so producers can size records against it exactly."""
    base = login_bytes()
    data = base[:-1] + b" " * (MAX_RECORD_BYTES - len(base)) + b"}"

    event = decode_auth_event(data)

    assert MAX_RECORD_BYTES == len(data)
    assert isinstance(event, Login)
    assert "s-7f3e" == event.session_id


def test_every_schema_error_is_listed_in_order() -> None:
    """An operator should see all problems at once, not fix them one by one."""
    error = rejection(login_bytes(session_id=..., user_type="Admin", roles=["ok", ""]))

    expected = (
        "session_id: Field required; "
        "user_type: String should match pattern '^[a-z][a-z0-9_-]{0,31}$'; "
        "roles.1: String should have at least 1 character"
    )
    assert expected == error.detail


def test_detail_is_bounded_when_there_are_many_errors() -> None:
    """Detail goes into DeadLetter.detail (max 2048 chars), so it must never exceed that."""
    error = rejection(login_bytes(roles=[""] * 64, permissions=[""] * 256))

    assert "schema_violation" == error.reason
    assert len(error.detail) <= MAX_DETAIL_CHARS
    assert error.detail.startswith("roles.0: String should have at least 1 character; ")
    assert error.detail.endswith("more errors")


def test_hostile_tag_and_field_names_are_truncated_in_detail() -> None:
    """An attacker-sized tag or key must not crowd every other error out of the detail."""
    tag_error = rejection(login_bytes(type="x" * 5000))
    key_error = rejection(orjson.dumps({**LOGIN_FIELDS, "k" * 5000: 1}))

    expected_tag = f"type: unknown tag '{'x' * 61}...'; expected one of {EXPECTED_TAGS}"
    assert expected_tag == tag_error.detail
    assert f"{'k' * 61}...: Extra inputs are not permitted" == key_error.detail


# --- DecodeError ---------------------------------------------------------------------------


def test_decode_error_keeps_the_raw_bytes_and_formats_as_reason_colon_detail() -> None:
    """The dead-letter writer needs the original bytes and a readable one-line message."""
    data = login_bytes(type="signup")

    error = rejection(data)

    assert data == error.raw
    assert f"unknown_type: {error.detail}" == str(error)
    assert isinstance(error, SessionwardenError)
    assert (None, None, None) == state(error)[3:]


def test_at_returns_a_located_copy_and_leaves_the_original_alone() -> None:
    """The codec does not know Kafka coordinates; the consumer adds them without side effects."""
    error = rejection(b"[]")

    located = error.at("auth.events", 3, 1042)

    assert (*state(error)[:3], "auth.events", 3, 1042) == state(located)
    assert (None, None, None) == state(error)[3:]


def test_decode_error_survives_pickling() -> None:
    """Errors may cross process boundaries (worker pools, test runners) intact."""
    error = rejection(b"[]").at("auth.events", 0, 7)

    assert state(error) == state(pickle.loads(pickle.dumps(error)))


def test_a_decode_error_always_fits_in_a_dead_letter() -> None:
    """Every rejection must be recordable; a failing dead-letter write would stall the partition."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, **{f"f{i}": i for i in range(5000)}}))

    letter = DeadLetter(
        reason=error.reason,
        detail=error.detail,
        source_topic="auth.events",
        source_partition=1,
        source_offset=99,
        key_b64=None,
        value_b64=base64.b64encode(error.raw).decode("ascii"),
        dead_lettered_at=MOMENT,
    )

    assert letter == decode_dead_letter(encode(letter))


# --- the other decoders --------------------------------------------------------------------


def test_single_model_decoder_reports_a_foreign_type_as_unknown_type() -> None:
    """Reading the wrong topic should be diagnosed as such, not as a pile of field errors."""
    error = rejection(b'{"type":"revocation","user_id":"u"}', decode_alert)

    assert ("unknown_type", "type: unknown tag 'revocation'; expected 'alert'") == outcome(error)


def test_single_model_decoder_reports_a_missing_type_as_unknown_type() -> None:
    """A record without a tag is not an alert, whatever else it contains."""
    error = rejection(b'{"user_id":"u"}', decode_alert)

    assert ("unknown_type", "type: missing; expected 'alert'") == outcome(error)


def test_single_model_decoder_requires_the_type_tag_even_when_all_else_is_valid() -> None:
    """The tag defaults in Python, but records on the wire must carry it like every union does."""
    untagged = encode_dict({k: v for k, v in orjson.loads(ALERT_WIRE).items() if k != "type"})

    error = rejection(untagged, decode_alert)

    assert ("unknown_type", "type: missing; expected 'alert'") == outcome(error)
    assert "alert" == decode_alert(ALERT_WIRE).type


def test_union_decoders_name_their_own_tags() -> None:
    """The expected tags in the detail depend on the topic being decoded."""
    error = rejection(login_bytes(), decode_revocation_record)

    expected = "type: unknown tag 'login'; expected one of 'revocation', 'revalidation'"
    assert ("unknown_type", expected) == outcome(error)


@pytest.mark.parametrize(
    ("decode", "limit"),
    [
        (decode_revocation_record, MAX_OUTPUT_RECORD_BYTES),
        (decode_audit_event, MAX_OUTPUT_RECORD_BYTES),
        (decode_alert, MAX_OUTPUT_RECORD_BYTES),
        (decode_dead_letter, MAX_DEAD_LETTER_BYTES),
    ],
)
def test_every_decoder_enforces_its_size_limit(decode: Decoder, limit: int) -> None:
    """Output topics can be written by others too, so reading them is memory-bounded as well."""
    error = rejection(b" " * (limit + 1), decode)

    assert ("oversized", f"record is {limit + 1} bytes; the limit is {limit}") == outcome(error)


def test_largest_valid_revocation_and_alert_decode_within_the_output_limit() -> None:
    """A record we are allowed to produce must never be refused when it is read back."""
    roles = [worst_text(128)] * 64
    revocation = Revocation(
        revocation_id=UUID(int=1),
        session_id=worst_text(256),
        user_id=worst_text(128),
        tenant=worst_text(128),
        reason="permissions_revoked",
        effective_at=MOMENT,
        emitted_at=MOMENT,
        roles=roles,
        permissions=[worst_text(128)] * 256,
        roles_removed=roles,
        policy_version=worst_text(64),
        cause_event_id=UUID(int=2),
    )
    alert = Alert(
        alert_id=UUID(int=1),
        kind="concurrent_sessions",
        severity="critical",
        user_id=worst_text(128),
        tenant=worst_text(128),
        first_seen=MOMENT,
        last_seen=MOMENT,
        evidence=AlertEvidence(
            event_ids=[UUID(int=i) for i in range(256)],
            session_ids=[worst_text(256)] * 256,
            roles=roles,
            counts={f"{i:02d}{worst_text(62)}": 2**63 - 1 for i in range(32)},
        ),
        summary=worst_text(512),
        suppressed=2**63 - 1,
        emitted_at=MOMENT,
    )

    assert MAX_RECORD_BYTES < len(encode(revocation)) <= MAX_OUTPUT_RECORD_BYTES
    assert MAX_RECORD_BYTES < len(encode(alert)) <= MAX_OUTPUT_RECORD_BYTES
    assert revocation == decode_revocation_record(encode(revocation))
    assert alert == decode_alert(encode(alert))


def test_largest_valid_dead_letter_decodes_within_its_limit() -> None:
    """Dead letters embed whole records in base64, so they get their own, larger bound."""
    letter = DeadLetter(
        reason="oversized",
        detail=worst_text(MAX_DETAIL_CHARS),
        source_topic="t" * 249,
        source_partition=2**63 - 1,
        source_offset=2**63 - 1,
        key_b64="A" * MAX_RAW_B64_CHARS,
        value_b64="A" * MAX_RAW_B64_CHARS,
        dead_lettered_at=MOMENT,
    )

    assert len(encode(letter)) <= MAX_DEAD_LETTER_BYTES
    assert letter == decode_dead_letter(encode(letter))
