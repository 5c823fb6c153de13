"""The single JSON codec for every Sessionwarden record.

Encoding goes through orjson with fixed options; decoding lets pydantic-core parse and
validate in one pass and turns every failure into a ``DecodeError`` whose ``reason`` is
one of the dead-letter reasons.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, get_origin

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, from_json

from sessionwarden.contracts.base import MAX_PERMISSIONS
from sessionwarden.contracts.commands import OperatorCommand
from sessionwarden.contracts.inputs import (
    AUTH_EVENT_ADAPTER,
    AUTH_EVENT_MODELS,
    AUTH_EVENT_TYPES,
    AuthEvent,
)
from sessionwarden.contracts.outputs import (
    AUDIT_EVENT_ADAPTER,
    MAX_DETAIL_CHARS,
    MAX_RAW_B64_CHARS,
    REVOCATION_RECORD_ADAPTER,
    ActivityAfterRevocation,
    Alert,
    AuditEvent,
    DeadLetter,
    DeadLetterReason,
    EndedSessionUsed,
    ForeignSessionEvent,
    HighRiskOperation,
    LoginAfterLogout,
    OperatorCommandApplied,
    Revalidation,
    Revocation,
    RevocationRecord,
    RoleChanged,
    SessionEnded,
    SessionRiskChanged,
    SessionStarted,
    TenantRevocation,
)
from sessionwarden.errors import SessionwardenError

__all__ = [
    "MAX_COMMAND_BYTES",
    "MAX_DEAD_LETTER_BYTES",
    "MAX_OUTPUT_RECORD_BYTES",
    "MAX_RECORD_BYTES",
    "ORJSON_OPTIONS",
    "DecodeError",
    "decode_alert",
    "decode_audit_event",
    "decode_auth_event",
    "decode_dead_letter",
    "decode_operator_command",
    "decode_revocation_record",
    "encode",
    "encode_dict",
]

MAX_RECORD_BYTES: Final = 64 * 1024
"""Inputs larger than this are dead-lettered as ``oversized`` without being parsed."""

MAX_OUTPUT_RECORD_BYTES: Final = 1024 * 1024
"""Limit for reading back revocations, audit events and alerts: their field bounds allow
records above MAX_RECORD_BYTES (escaped or multi-byte text), but well under 1 MiB."""

MAX_COMMAND_BYTES: Final = 8 * 1024
"""Operator commands larger than this are dead-lettered as ``oversized`` without being parsed
(the largest valid command is under 3 KiB)."""

MAX_DEAD_LETTER_BYTES: Final = 2 * MAX_RAW_B64_CHARS + 64 * 1024
"""A dead letter carries the original key and value in base64, so it may be far larger."""

ORJSON_OPTIONS: Final = orjson.OPT_UTC_Z
"""Fixed encoder options. Together with orjson's defaults they give:

* compact output, keys in model field order (no sorting, no whitespace);
* datetimes as RFC 3339 with ``Z`` for UTC (``OPT_UTC_Z``), e.g. ``2026-01-02T03:04:05Z``,
  and ``2026-01-02T03:04:05.123456Z`` when microseconds are non-zero;
* UUIDs as lowercase hyphenated strings; non-finite floats never occur (models forbid them).
"""

MAX_INPUT_STRING_CHARS: Final = 512
"""The longest string any auth.events field allows (user_agent, resource)."""
MAX_INPUT_ARRAY_ITEMS: Final = MAX_PERMISSIONS
"""The longest array any auth.events field allows (permissions)."""

M = TypeVar("M", bound=BaseModel)

_TAG_PREVIEW_CHARS = 64
_LOC_PART_CHARS = 64
_NOT_AN_OBJECT = frozenset({"dict_type", "model_type", "model_attributes_type"})
_JSON_KINDS: dict[int, str] = {
    **dict.fromkeys(b"-0123456789", "number"),
    **dict.fromkeys(b"tf", "boolean"),
    ord("["): "array",
    ord('"'): "string",
    ord("n"): "null",
}
"""The JSON value kind implied by a document's first significant byte."""


class DecodeError(SessionwardenError):
    """A record that cannot become a model; ``reason`` says which dead-letter bucket it goes to.

    ``topic``, ``partition`` and ``offset`` are unset when raised by the codec; the consumer
    fills them in with :meth:`at`.
    """

    def __init__(
        self,
        reason: DeadLetterReason,
        detail: str,
        raw: bytes,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DeadLetterReason = reason
        self.detail = detail
        self.raw = raw
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def at(self, topic: str, partition: int, offset: int) -> DecodeError:
        """Return a copy that records where the bad record was read from."""
        located = DecodeError(self.reason, self.detail, self.raw, topic, partition, offset)
        located.__cause__ = self.__cause__
        return located

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.reason, self.detail, self.raw, self.topic, self.partition, self.offset)
        return (type(self), args)

    def __repr__(self) -> str:
        where = f" at {self.topic}[{self.partition}]@{self.offset}" if self.topic else ""
        return f"DecodeError({self.reason!r}, {self.detail!r}{where})"


# --- encoding ------------------------------------------------------------------------------


def encode(model: BaseModel) -> bytes:
    """Serialise a model to its wire bytes."""
    return orjson.dumps(model.model_dump(mode="python"), option=ORJSON_OPTIONS)


def encode_dict(record: Mapping[str, Any]) -> bytes:
    """Serialise a plain dict with exactly the options :func:`encode` uses."""
    return orjson.dumps(record, option=ORJSON_OPTIONS)


# --- decoding ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target(Generic[M]):
    """What is being decoded: its validator, ``type`` tags, size limit and whether a union."""

    validate_json: Callable[[bytes], M]
    tags: tuple[str, ...]
    union: bool
    max_bytes: int

    def expected(self) -> str:
        return ("one of " if self.union else "") + ", ".join(repr(tag) for tag in self.tags)


def _tags(*models: type[BaseModel]) -> tuple[str, ...]:
    return tuple(str(model.model_fields["type"].default) for model in models)


# The adapters' pydantic-core validators are called directly: same parse-and-validate pass as
# ``TypeAdapter.validate_json`` without its per-call argument handling (about 1 us per record).
_validate_auth_event_json: Callable[[bytes], AuthEvent] = AUTH_EVENT_ADAPTER.validator.validate_json

_AUTH_EVENT: _Target[AuthEvent] = _Target(
    _validate_auth_event_json, AUTH_EVENT_TYPES, union=True, max_bytes=MAX_RECORD_BYTES
)
_REVOCATION_RECORD: _Target[RevocationRecord] = _Target(
    REVOCATION_RECORD_ADAPTER.validator.validate_json,
    _tags(Revocation, Revalidation, TenantRevocation),
    union=True,
    max_bytes=MAX_OUTPUT_RECORD_BYTES,
)
_AUDIT_EVENT: _Target[AuditEvent] = _Target(
    AUDIT_EVENT_ADAPTER.validator.validate_json,
    _tags(
        SessionStarted,
        SessionEnded,
        RoleChanged,
        EndedSessionUsed,
        HighRiskOperation,
        ActivityAfterRevocation,
        LoginAfterLogout,
        ForeignSessionEvent,
        OperatorCommandApplied,
        SessionRiskChanged,
    ),
    union=True,
    max_bytes=MAX_OUTPUT_RECORD_BYTES,
)
_ALERT: _Target[Alert] = _Target(
    TypeAdapter(Alert).validator.validate_json,
    _tags(Alert),
    union=False,
    max_bytes=MAX_OUTPUT_RECORD_BYTES,
)
_DEAD_LETTER: _Target[DeadLetter] = _Target(
    TypeAdapter(DeadLetter).validator.validate_json,
    _tags(DeadLetter),
    union=False,
    max_bytes=MAX_DEAD_LETTER_BYTES,
)

_OPERATOR_COMMAND: _Target[OperatorCommand] = _Target(
    TypeAdapter(OperatorCommand).validator.validate_json,
    _tags(OperatorCommand),
    union=False,
    max_bytes=MAX_COMMAND_BYTES,
)


def _unparsable(data: bytes | None, limit: int) -> DecodeError:
    """The error for a record rejected before parsing: a tombstone or an oversized value."""
    if data is None:
        return DecodeError("undecodable", "record has no value (tombstone)", b"")
    return DecodeError("oversized", f"record is {len(data)} bytes; the limit is {limit}", data)


def decode_auth_event(data: bytes | None) -> AuthEvent:
    """Decode one auth.events record; raises :class:`DecodeError`.

    The work of rejecting a record is bounded before any field is validated: a record with
    more keys than the widest input type is refused unparsed; one that could make field
    validation list many errors (long or nested arrays, several objects) is screened first
    (``_screen``); a key given twice is refused (orjson and pydantic keep the last silently).
    """
    if data is None or len(data) > MAX_RECORD_BYTES:
        raise _unparsable(data, MAX_RECORD_BYTES)
    plain = len(data) <= _PLAIN_BYTES
    exact = plain and _BACKSLASH not in data  # a byte found by memchr, not a substring search
    # Without a backslash every quote delimits a string, so with whitespace removed each '":'
    # ends a key or begins a string that begins with a colon: the count is at least the keys.
    # Otherwise it is a first estimate (see _MAX_FIELDS).
    keys = data.translate(None, _WHITESPACE).count(b'":') if exact else _keys_at_least(data)
    if keys > _MAX_FIELDS:
        # Counted again without the strings only for a record of an auth event's size: a
        # larger one is a flood, refused on the first count (64 KiB split by quotes costs
        # five times its refusal).
        keys = _keys_outside_strings(data) if plain else keys
        if keys > _MAX_FIELDS:
            detail = f"(record): {keys} keys or more; no auth event has more than {_MAX_FIELDS}"
            raise DecodeError("schema_violation", detail, data)
    if not plain:
        problem = _screen(data)
        if problem is not None:
            raise problem
    try:
        event = _validate_auth_event_json(data)
    except ValidationError as exc:
        raise _failure(exc, data, _AUTH_EVENT, screened=not plain) from exc
    if not exact or keys != len(event.__pydantic_fields_set__):
        # More keys in the raw bytes than were kept, or they cannot be counted exactly.
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:  # NaN or Infinity beside a valid later key
            raise DecodeError("undecodable", _parse_error_detail(data, exc), data) from exc
        duplicate = _duplicate_key(data, doc)
        if duplicate is not None:
            detail = f"{_preview(duplicate, _LOC_PART_CHARS)}: duplicate key"
            raise DecodeError("schema_violation", detail, data)
    return event


def _plain(data: bytes) -> bool:
    """A small record needs no screen: with its keys bounded, field validation lists a few
    hundred errors at most (an over-long array is one error) and costs less than the screen's
    parse."""
    return len(data) <= _PLAIN_BYTES


# --- the screen: bounded work before field validation ----------------------------------------

_AUTH_FIELDS: dict[str, frozenset[str]] = {
    str(model.model_fields["type"].default): frozenset(model.model_fields)
    for model in AUTH_EVENT_MODELS
}
_LIST_FIELDS: dict[str, tuple[str, ...]] = {
    str(model.model_fields["type"].default): tuple(
        name for name, info in model.model_fields.items() if get_origin(info.annotation) is list
    )
    for model in AUTH_EVENT_MODELS
}
_MAX_FIELDS = max(len(fields) for fields in _AUTH_FIELDS.values())
"""Keys of the widest input type. Before parsing, ``":`` not preceded by a backslash is
counted: inside a JSON string a quote is always escaped, so each such pair ends a key or begins
a string that begins with a colon (``":read"``). Above this, a record of at most
``_PLAIN_BYTES`` has the colons outside its strings counted (``_keys_outside_strings``), and if
the keys are still too many (or the record is larger) it is refused without building the
object: orjson's parse of a 64 KB object of ~7,700 keys is most of what rejecting it costs."""
_HEAD_BYTES = 2048
_PLAIN_BYTES = 4096
_WHITESPACE = b" \t\r\n"
_BACKSLASH = ord("\\")
_NESTED = "fields hold strings and arrays of strings"
_ESCAPED_COLONS = (b"\\u003a", b"\\u003A")


def _screen(data: bytes) -> DecodeError | None:
    """A one-line rejection of a shape no auth event has, or None to validate the fields.

    One orjson parse (about 1 us for a normal event), a subset test of the keys and a look at
    the array fields; it stops at the first problem. What remains for field validation is at
    most one error per field and per array item, so its work is bounded too. Only records of
    a known ``type`` are screened for keys: an unknown or missing tag is the whole answer.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return DecodeError("undecodable", _parse_error_detail(data, exc), data)
    if type(doc) is not dict:
        return DecodeError("undecodable", f"expected a JSON object, got {_json_kind(data)}", data)
    tag = doc.get("type")
    fields = _AUTH_FIELDS.get(tag) if type(tag) is str else None
    if fields is None or type(tag) is not str:
        return _screen_untyped(doc, data)
    if not fields.issuperset(doc):
        key = next(key for key in doc if key not in fields)
        detail = f"{_preview(key, _LOC_PART_CHARS)}: Extra inputs are not permitted"
        if len(doc) > len(fields):
            detail += f" ({len(doc)} fields; a {tag!r} has at most {len(fields)})"
        return DecodeError("schema_violation", detail, data)
    for name in _LIST_FIELDS[tag]:
        value = doc.get(name)
        if type(value) is list:
            problem = _screen_array(name, value)
            if problem is not None:
                return DecodeError("schema_violation", problem, data)
    return None


def _keys_at_least(data: bytes) -> int:
    """A lower bound on the keys in ``data`` (see ``_MAX_FIELDS``): from its first 2 KiB when
    that already shows too many (a few microseconds), else from all of it."""
    for end in (_HEAD_BYTES, len(data)):
        keys = data.count(b'":', 0, end)
        if keys > _MAX_FIELDS and data.find(b'\\"', 0, end) >= 0:
            keys -= data.count(b'\\":', 0, end)
        if keys > _MAX_FIELDS or end >= len(data):
            return keys
    return 0  # unreachable: the second pass covers the whole record


def _keys_outside_strings(data: bytes) -> int:
    """The keys of ``data`` (exact for valid JSON), counted as the colons outside strings: the
    escapes holding a backslash or a quote are dropped, so every quote left delimits a string
    (a string that begins with a colon is no key, though ``":`` begins it). From the first
    2 KiB first, a lower bound that already refuses a flood."""
    for end in (_HEAD_BYTES, len(data)):
        plain = data[:end].replace(b"\\\\", b"").replace(b'\\"', b"")
        keys = b"".join(plain.split(b'"')[::2]).count(b":")
        if keys > _MAX_FIELDS:
            return keys
    return keys


def _screen_array(name: str, value: list[Any]) -> str | None:
    if len(value) > MAX_INPUT_ARRAY_ITEMS:
        most = MAX_INPUT_ARRAY_ITEMS
        return f"{name}: array of {len(value)} items; no field allows more than {most}"
    for index, item in enumerate(value):
        kind = type(item)
        if kind is list or kind is dict:
            return f"{name}.{index}: nested array or object; {_NESTED}"
        if kind is str and len(item) > MAX_INPUT_STRING_CHARS:
            return (
                f"{name}.{index}: string of {len(item)} characters; "
                f"no field allows more than {MAX_INPUT_STRING_CHARS}"
            )
    return None


def _screen_untyped(doc: dict[str, Any], data: bytes) -> DecodeError | None:
    """A record without a known ``type``: the tag is the whole answer."""
    if "type" not in doc:
        return DecodeError(
            "unknown_type", f"type: missing; expected {_AUTH_EVENT.expected()}", data
        )
    tag = doc["type"]
    if type(tag) is not str:
        detail = f"type: must be a string; expected {_AUTH_EVENT.expected()}"
        return DecodeError("unknown_type", detail, data)
    return DecodeError(
        "unknown_type",
        f"type: unknown tag {_preview(tag)!r}; expected {_AUTH_EVENT.expected()}",
        data,
    )


def _duplicate_key(data: bytes, doc: dict[str, Any]) -> str | None:
    """The first key that occurs twice in the object, else None.

    Cheap for every record: outside strings a colon only ever follows a key, so the raw bytes
    hold one colon per key plus those inside strings (a ``\\u003a`` escape counted as one);
    orjson's compact re-encoding of the parsed object holds one per kept key plus the same
    string colons. Keys orjson dropped (it keeps the last of duplicates) make the raw count
    larger. Only then is the record parsed again with a hook that names the key; the screen
    has bounded it to a few dozen keys and arrays of scalars by then.
    """
    raw = data.count(b":")
    if b"\\u" in data:
        raw += data.count(_ESCAPED_COLONS[0]) + data.count(_ESCAPED_COLONS[1])
    if raw == orjson.dumps(doc).count(b":"):
        return None
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    json.loads(data, object_pairs_hook=pairs)
    return found[0] if found else None


def _parse_error_detail(data: bytes, exc: orjson.JSONDecodeError) -> str:
    """Invalid JSON: pydantic's wording where it agrees that it is invalid; orjson also
    refuses what pydantic's parser accepts (``NaN``, ``Infinity``)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8: {bad.reason} at byte {bad.start}"
    try:
        from_json(data, allow_inf_nan=False)
    except ValueError as error:
        return f"Invalid JSON: {error}"
    return f"Invalid JSON: {exc.msg}"


def _decode(target: _Target[M], data: bytes | None) -> M:
    if data is None or len(data) > target.max_bytes:
        raise _unparsable(data, target.max_bytes)
    try:
        record = target.validate_json(data)
    except ValidationError as exc:
        raise _failure(exc, data, target) from exc
    if "type" not in record.model_fields_set:
        # Only possible for a single model, where ``type`` has a default; the wire requires it.
        raise DecodeError("unknown_type", f"type: missing; expected {target.expected()}", data)
    return record


def decode_revocation_record(data: bytes | None) -> RevocationRecord:
    """Decode a record from sessionwarden.revocations; raises :class:`DecodeError`."""
    return _decode(_REVOCATION_RECORD, data)


def decode_audit_event(data: bytes | None) -> AuditEvent:
    """Decode a record from sessionwarden.audit; raises :class:`DecodeError`."""
    return _decode(_AUDIT_EVENT, data)


def decode_alert(data: bytes | None) -> Alert:
    """Decode a record from sessionwarden.alerts; raises :class:`DecodeError`."""
    return _decode(_ALERT, data)


def decode_dead_letter(data: bytes | None) -> DeadLetter:
    """Decode a record from sessionwarden.dlq; raises :class:`DecodeError`."""
    return _decode(_DEAD_LETTER, data)


def decode_operator_command(data: bytes | None) -> OperatorCommand:
    """Decode a record from sessionwarden.commands; raises :class:`DecodeError`. As strict as
    an auth event: bounded size, unknown keys refused, a key given twice refused (the parsers
    keep the last silently, which could swap the target of a command)."""
    command = _decode(_OPERATOR_COMMAND, data)
    assert data is not None  # _decode refused a tombstone
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # NaN or Infinity that pydantic's parser took
        raise DecodeError("undecodable", _parse_error_detail(data, exc), data) from exc
    duplicate = _duplicate_key(data, doc)
    if duplicate is not None:
        detail = f"{_preview(duplicate, _LOC_PART_CHARS)}: duplicate key"
        raise DecodeError("schema_violation", detail, data)
    return command


# --- failure classification (cold path) ----------------------------------------------------


def _failure(
    exc: ValidationError, data: bytes, target: _Target[Any], screened: bool = True
) -> DecodeError:
    if not screened and (b"NaN" in data or b"Infinity" in data):
        # pydantic's parser takes these literals; they are not JSON (orjson refuses them).
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError as invalid:
            return DecodeError("undecodable", _parse_error_detail(data, invalid), data)
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return DecodeError("undecodable", _invalid_json_detail(data, first["msg"]), data)
    if kind in _NOT_AN_OBJECT and not first["loc"]:
        return DecodeError("undecodable", f"expected a JSON object, got {_json_kind(data)}", data)
    if kind == "union_tag_not_found":
        return DecodeError("unknown_type", f"type: missing; expected {target.expected()}", data)
    if kind == "union_tag_invalid":
        tag = _preview(str(first.get("ctx", {}).get("tag", "")))
        detail = f"type: unknown tag {tag!r}; expected {target.expected()}"
        return DecodeError("unknown_type", detail, data)
    if not target.union:
        problem = _model_tag_problem(data, target)
        if problem is not None:
            return DecodeError("unknown_type", problem, data)
    return DecodeError("schema_violation", _violations(errors, target.union), data)


def _model_tag_problem(data: bytes, target: _Target[Any]) -> str | None:
    """For a single model, a missing or foreign ``type`` outranks the other field errors."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    if "type" not in document:
        return f"type: missing; expected {target.expected()}"
    if document["type"] not in target.tags:
        tag = _preview(str(document["type"]))
        return f"type: unknown tag {tag!r}; expected {target.expected()}"
    return None


def _invalid_json_detail(data: bytes, message: str) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: {exc.reason} at byte {exc.start}"
    return message


def _json_kind(data: bytes) -> str:
    stripped = data.lstrip(b" \t\r\n")
    return _JSON_KINDS.get(stripped[0], "a non-object value") if stripped else "nothing"


def _violations(errors: Sequence[ErrorDetails], union: bool) -> str:
    """Render every error as ``loc.path: msg``, joined by ``; `` and bounded in length."""
    budget = MAX_DETAIL_CHARS - 32
    parts: list[str] = []
    used = 0
    for index, error in enumerate(errors):
        loc = error["loc"][1:] if union else error["loc"]
        part = f"{_loc_text(loc)}: {error['msg']}"
        if used + len(part) > budget:
            remaining = len(errors) - index
            parts.append(f"... and {remaining} more error{'s' if remaining > 1 else ''}")
            break
        parts.append(part)
        used += len(part) + 2
    return "; ".join(parts)[:MAX_DETAIL_CHARS]


def _loc_text(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "(record)"
    return ".".join(_preview(str(part), _LOC_PART_CHARS) for part in loc)


def _preview(text: str, limit: int = _TAG_PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
