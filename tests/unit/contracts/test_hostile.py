"""Hostile input on auth.events: rejected cheaply, and the contract's strict corners decided."""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any

import orjson
import pytest

from sessionwarden.contracts.codec import MAX_RECORD_BYTES, DecodeError, decode_auth_event
from sessionwarden.contracts.jsonschema import JSON_DIR
from tests.unit.contracts.test_codec import LOGIN_FIELDS

ACTIVITY_FIELDS: dict[str, Any] = {
    "type": "activity",
    "schema_version": 1,
    "event_id": "0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0e",
    "occurred_at": "2026-01-02T03:04:06Z",
    "user_id": "u-1842",
    "tenant": "acme",
    "session_id": "s-7f3e",
    "action": "GET /invoices",
}


PADDING: dict[str, Any] = {"permissions": ["p" * 120] * 40}
"""Makes a login larger than the 4 KiB under which records are not screened."""


def rejection(data: bytes | None) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode_auth_event(data)
    return caught.value


def flood_record(fields: dict[str, Any] = LOGIN_FIELDS) -> bytes:
    """The shape from the field: valid JSON just under 64 KB, thousands of unknown keys."""
    doc = dict(fields)
    size = len(orjson.dumps(doc))
    i = 0
    while size + len(f'"{i:x}":0,') <= MAX_RECORD_BYTES:
        doc[f"{i:x}"] = 0
        size += len(f'"{i:x}":0,')
        i += 1
    data = orjson.dumps(doc)
    assert MAX_RECORD_BYTES - 16 < len(data) <= MAX_RECORD_BYTES
    return data


def best_of(runs: int, data: bytes) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        with contextlib.suppress(DecodeError):
            decode_auth_event(data)
        best = min(best, time.perf_counter() - start)
    return best


# --- cheap rejection of hostile shapes -----------------------------------------------------


def test_flood_record_is_rejected_by_its_key_count_before_parsing() -> None:
    """A record of thousands of unknown keys gets one line, not an error per key, and is not
    even parsed: no auth event has more than 16 keys."""
    data = flood_record()

    error = rejection(data)

    assert len(orjson.loads(data)) > 7000
    assert ("schema_violation", "no auth event has more than 16") == (
        error.reason,
        error.detail.split("; ")[1],
    )
    assert error.detail.startswith("(record): ")


def test_key_count_is_found_behind_a_long_leading_string() -> None:
    """The first 2 KiB are only a shortcut: keys after a long string are still counted."""
    fields = {"pad": "x" * 5000, **LOGIN_FIELDS, **{f"k{i}": 0 for i in range(1000)}}

    error = rejection(orjson.dumps(fields))

    assert error.detail.startswith("(record): 1014 keys or more")


def test_escaped_quotes_before_colons_do_not_count_as_keys() -> None:
    """Inside a string a quote is escaped: '\\":' in a value must never look like a key."""
    fields = {**LOGIN_FIELDS, "user_agent": 'a":' * 150, "permissions": ['p":q'] * 200}

    event = decode_auth_event(orjson.dumps(fields))

    assert 'a":' * 150 == event.user_agent  # type: ignore[union-attr]


@pytest.mark.parametrize("padding", [{}, {"user_agent": "\\" + "a" * 500}])
def test_strings_that_begin_with_a_colon_are_not_counted_as_keys(padding: dict[str, Any]) -> None:
    """A valid login whose permissions begin with ':' has more '":' than keys: it was refused
    as having too many keys before its fields were read (escaped or not)."""
    permissions = [f":perm{i}" for i in range(30)]
    doc = {**LOGIN_FIELDS, **padding}
    doc["permissions"] = permissions + doc.get("permissions", [])

    event = decode_auth_event(orjson.dumps(doc))

    assert permissions == event.permissions[:30]  # type: ignore[union-attr]


def test_a_record_over_4_kib_is_refused_on_its_first_count_of_keys() -> None:
    """Above 4 KiB the '":' count alone decides (a key flood of 64 KiB is refused in the time
    of that count; counting its keys outside strings took five times as long): a login that
    large with more than 16 strings beginning with ':' is refused, as documented."""
    doc = {**LOGIN_FIELDS, **PADDING}
    doc["permissions"] = [f":perm{i}" for i in range(30)] + PADDING["permissions"]

    assert "keys or more" in rejection(orjson.dumps(doc)).detail


def test_key_ending_in_an_escaped_backslash_is_still_a_key() -> None:
    """'\\\\":' ends a key (the backslash is itself escaped); counting it low is safe."""
    data = orjson.dumps({**LOGIN_FIELDS, "k\\": 1})

    assert "k\\: Extra inputs are not permitted" == rejection(data).detail


def test_flood_record_is_rejected_in_well_under_a_millisecond_or_two() -> None:
    """The 64 KB / ~7,700-key record took 10-35 ms to reject; a producer could stall the
    enforcer with it. The best of several runs is robust to a busy machine."""
    data = flood_record()

    assert best_of(15, data) < 0.002


@pytest.mark.parametrize("tag", ["signup", None, 7])
def test_flood_record_with_an_unknown_or_missing_type_is_cheap(tag: object) -> None:
    """An unknown tag must not make the decoder look at every other key either."""
    fields = dict(LOGIN_FIELDS)
    if tag is None:
        del fields["type"]
    else:
        fields["type"] = tag
    data = flood_record(fields)

    error = rejection(data)

    assert error.reason in ("unknown_type", "schema_violation")
    assert best_of(15, data) < 0.002


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        pytest.param(
            {"roles": [f"r{i}" for i in range(5000)]},
            "roles: array of 5000 items; no field allows more than 256",
            id="long-array",
        ),
        pytest.param(
            {"roles": [[[["deep"]]]]},
            "roles.0: nested array or object; fields hold strings and arrays of strings",
            id="nested-array",
        ),
        pytest.param(
            {"roles": [{"a": 1}]},
            "roles.0: nested array or object; fields hold strings and arrays of strings",
            id="object-in-array",
        ),
        pytest.param(
            {"session_id": {"a": {"b": 1}}},
            "session_id: Input should be a valid string",
            id="object-value",
        ),
        pytest.param(
            {"user_agent": "x" * 40_000},
            "user_agent: String should have at most 512 characters",
            id="long-string",
        ),
        pytest.param(
            {"permissions": ["p" * 30_000]},
            "permissions.0: string of 30000 characters; no field allows more than 512",
            id="long-string-in-array",
        ),
    ],
)
def test_hostile_shapes_are_rejected_before_field_validation(
    changes: dict[str, Any], detail: str
) -> None:
    """Shapes no input can have are refused with one line per field at most: the arrays of a
    record over 4 KiB are screened before field validation, a top-level field costs one
    error."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, **PADDING, **changes}))

    assert ("schema_violation", detail) == (error.reason, error.detail)


def test_too_many_fields_are_refused_with_the_first_unknown_one_named() -> None:
    """Key count is bounded by the widest input type, whatever the keys are called."""
    extras = {f"extra_{i:04d}": "x" * 1000 for i in range(5)}

    error = rejection(orjson.dumps({**ACTIVITY_FIELDS, **extras}))

    expected = "extra_0000: Extra inputs are not permitted (13 fields; a 'activity' has at most 10)"
    assert ("schema_violation", expected) == (error.reason, error.detail)


# --- strict corners of the contract ----------------------------------------------------------


def test_small_records_with_bad_arrays_list_a_bounded_number_of_errors() -> None:
    """Under 4 KiB a record skips the screen: an over-long array is still one error."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, "roles": [[0]] * 70 + [0] * 1000}))

    assert "roles: List should have at most 64 items after validation, not 1070" in error.detail


def test_non_finite_literal_beside_a_duplicate_key_is_not_json() -> None:
    """pydantic's parser takes NaN; when a later duplicate hides it, it is still refused."""
    data = orjson.dumps(ACTIVITY_FIELDS)[:-1] + b',"resource":NaN,"resource":"/x"}'

    assert "undecodable" == rejection(data).reason


def test_duplicate_json_key_is_rejected() -> None:
    """orjson keeps the last of two keys silently: what the producer's own tools show (the
    first) is not what the enforcer would act on."""
    data = orjson.dumps(LOGIN_FIELDS)[:-1] + b',"user_id":"mallory"}'

    error = rejection(data)

    assert ("schema_violation", "user_id: duplicate key") == (error.reason, error.detail)


@pytest.mark.parametrize("spacing", [b" ", b"\t", b"\n", b"\r\n "])
def test_duplicate_key_spaced_from_its_colon_is_rejected(spacing: bytes) -> None:
    """Whitespace before a colon must not hide a key from the cheap count."""
    data = orjson.dumps(LOGIN_FIELDS)[:-1] + b',"user_id"' + spacing + b':"mallory"}'

    assert "user_id: duplicate key" == rejection(data).detail


def test_duplicate_type_key_is_rejected() -> None:
    data = b'{"type":"logout",' + orjson.dumps(LOGIN_FIELDS)[1:]

    assert "type: duplicate key" == rejection(data).detail


def test_duplicate_key_hidden_behind_escaped_colons_is_still_found() -> None:
    """Escapes must not let a duplicate pass the cheap count."""
    fields = {**LOGIN_FIELDS, "permissions": ["a:b"]}
    data = orjson.dumps(fields).replace(b"a:b", b"a\\u003ab")[:-1] + b',"tenant":"evil"}'

    assert "tenant: duplicate key" == rejection(data).detail


def test_escaped_colons_and_colons_in_values_are_not_duplicates() -> None:
    """The duplicate check must never refuse a valid record."""
    fields = {**LOGIN_FIELDS, "permissions": ["a:b", "c::d"], "user_agent": "x:y:z"}
    data = orjson.dumps(fields).replace(b"a:b", b"a\\u003Ab").replace(b"c::d", b"c\\\\u003a::d")

    event = decode_auth_event(data)

    assert ("a:b", "c\\u003a::d") == tuple(event.permissions)  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [True, False, "1", 2, None])
def test_schema_version_must_be_the_number_one(value: object) -> None:
    """``true`` is not 1: a boolean or a numeric string is a producer bug, not version 1."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, "schema_version": value}))

    assert "schema_violation" == error.reason
    assert error.detail.startswith("schema_version: ")


@pytest.mark.parametrize("field", ["occurred_at", "auth_time"])
@pytest.mark.parametrize("value", [1767322245, 1767322245.5, True])
def test_timestamps_must_be_rfc3339_strings_not_unix_numbers(field: str, value: object) -> None:
    """The contract says RFC 3339 with an offset; a Unix number has neither unit nor zone."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, field: value}))

    assert "schema_violation" == error.reason
    assert error.detail.startswith(f"{field}: ")


@pytest.mark.parametrize("field", ["occurred_at", "auth_time"])
@pytest.mark.parametrize("value", ["1767322245", "1767322245.5", "-1", " 1767322245"])
def test_timestamps_must_not_be_unix_numbers_written_as_strings(field: str, value: str) -> None:
    """pydantic reads a numeric string as Unix seconds: the same number in quotes, no zone."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, field: value}))

    assert "schema_violation" == error.reason
    assert error.detail.startswith(f"{field}: Value error, must be an RFC 3339 string")


_NOT_A_NUMBER = "Value error, must be an RFC 3339 string with an offset, not a number"
_NOT_DATE_FIRST = "Value error, must be an RFC 3339 string with an offset, beginning with its date"
_BAD_MONTH = (
    "Input should be a valid datetime or date, month value is outside expected range of 1-12"
)


@pytest.mark.parametrize("field", ["occurred_at", "auth_time"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1767322245, _NOT_A_NUMBER),
        (False, _NOT_A_NUMBER),
        ("T2026-01-02", _NOT_DATE_FIRST),
        ("\u0662\u0660\u0662\u0666-01-02T03:04:05Z", _NOT_DATE_FIRST),
        ("2026-13-02T03:04:05Z", _BAD_MONTH),
        ("2026-01-02T03:04:05", "Input should have timezone info"),
        (None, "Input should be a valid datetime"),
        (["2026-01-02T03:04:05Z"], "Input should be a valid datetime"),
    ],
)
def test_each_refused_timestamp_keeps_its_detail(field: str, value: object, message: str) -> None:
    """A string that begins with its date is handed to the datetime parser at once; every
    other value meets the number and date-first checks, each with its own wording."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, field: value}))

    assert "schema_violation" == error.reason
    assert f"{field}: {message}" == error.detail


@pytest.mark.parametrize("field", ["occurred_at", "auth_time"])
@pytest.mark.parametrize("value", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_timestamp_outside_the_utc_range_is_a_schema_violation(field: str, value: str) -> None:
    """A valid date whose UTC instant falls before year 1 or after 9999 raised OverflowError
    out of the decode, past the enforcer's dead-letter path, instead of a DecodeError."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, field: value}))

    assert "schema_violation" == error.reason
    assert f"{field}: Value error, is out of range once converted to UTC" == error.detail


@pytest.mark.parametrize("field", ["user_id", "tenant", "session_id", "auth_method"])
@pytest.mark.parametrize("value", ["a\x00b", "a\nb", "a\x1bb", "a\x7fb", "a\x85b", "a\u2028b"])
def test_control_characters_in_identifiers_are_rejected(field: str, value: str) -> None:
    """Ids end up in logs, keys and SQL settings; a control character there is an attack."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, field: value}))

    assert "schema_violation" == error.reason
    assert error.detail.startswith(f"{field}: String should match pattern")


@pytest.mark.parametrize("value", [" alice", "alice ", "\talice", "alice\u00a0", " "])
def test_whitespace_padded_identifiers_are_rejected(value: str) -> None:
    """ " alice" and "alice" would be two users to the enforcer and one to a person."""
    error = rejection(orjson.dumps({**LOGIN_FIELDS, "user_id": value}))

    assert error.detail.startswith("user_id: String should match pattern")


@pytest.mark.parametrize(
    ("field", "value"),
    [("roles", ["ad\nmin"]), ("action", "GET\r\nX-Evil: 1"), ("resource", "a\x00")],
)
def test_control_characters_in_other_text_are_rejected(field: str, value: object) -> None:
    fields = {**(LOGIN_FIELDS if field == "roles" else ACTIVITY_FIELDS), field: value}

    error = rejection(orjson.dumps(fields))

    assert "schema_violation" == error.reason


def test_inner_spaces_and_unicode_in_identifiers_are_accepted() -> None:
    """Only control characters and surrounding whitespace are refused."""
    event = decode_auth_event(orjson.dumps({**LOGIN_FIELDS, "user_id": "Zoë van Dijk"}))

    assert "Zoë van Dijk" == event.user_id


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_number_literals_are_not_json(literal: bytes) -> None:
    data = orjson.dumps(LOGIN_FIELDS)[:-1] + b',"x":' + literal + b"}"

    assert "undecodable" == rejection(data).reason


@pytest.mark.parametrize("field", ["user_id", "tenant", "session_id"])
def test_empty_identifiers_are_rejected(field: str) -> None:
    assert "schema_violation" == rejection(orjson.dumps({**LOGIN_FIELDS, field: ""})).reason


def test_numbers_for_identifiers_are_rejected() -> None:
    assert "schema_violation" == rejection(orjson.dumps({**LOGIN_FIELDS, "user_id": 1842})).reason


def test_json_schema_files_carry_the_same_identifier_rule() -> None:
    """Producers validate against schemas/json; it must refuse what the decoder refuses."""
    login = json.loads((JSON_DIR / "login.json").read_text(encoding="utf-8"))
    for field in ("user_id", "tenant", "session_id"):
        pattern = re.compile(login["properties"][field]["pattern"])
        assert pattern.fullmatch("alice")
        for bad in ("a\x00b", " alice", "alice\n", ""):
            assert not pattern.fullmatch(bad), (field, bad)
    version = login["properties"]["schema_version"]
    assert 1 == version["const"]
    assert "integer" == version["type"]
    assert "string" == login["properties"]["occurred_at"]["type"]
