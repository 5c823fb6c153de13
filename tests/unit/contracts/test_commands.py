"""Operator commands (sessionwarden.commands): decoded as strictly as auth events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from sessionwarden.contracts.codec import (
    MAX_COMMAND_BYTES,
    DecodeError,
    decode_operator_command,
    encode,
)
from sessionwarden.contracts.commands import OperatorCommand

COMMAND_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def command(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "revoke_sessions",
        "schema_version": 1,
        "command_id": str(COMMAND_ID),
        "issued_at": "2026-01-02T03:04:05Z",
        "tenant": "acme",
        "scope": "user",
        "user_id": "alice",
        "operator": "User:security-oncall",
        "reason_admin": "account compromised, ticket SEC-42",
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def reason_of(doc: dict[str, Any] | bytes) -> tuple[str, str]:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    with pytest.raises(DecodeError) as caught:
        decode_operator_command(raw)
    return caught.value.reason, caught.value.detail


def test_a_user_command_decodes_and_encodes_to_the_same_bytes() -> None:
    """The CLI writes what the enforcer reads: the wire form is fixed."""
    raw = orjson.dumps(command())

    decoded = decode_operator_command(raw)

    assert (
        OperatorCommand(
            command_id=COMMAND_ID,
            issued_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            tenant="acme",
            scope="user",
            user_id="alice",
            operator="User:security-oncall",
            reason_admin="account compromised, ticket SEC-42",
        )
        == decoded
    )
    assert (
        b'{"type":"revoke_sessions","schema_version":1,'
        b'"command_id":"00000000-0000-4000-8000-000000000001","issued_at":"2026-01-02T03:04:05Z",'
        b'"tenant":"acme","scope":"user","session_id":null,"user_id":"alice",'
        b'"operator":"User:security-oncall","reason_admin":"account compromised, ticket SEC-42"}'
    ) == encode(decoded)


@pytest.mark.parametrize("reason_admin", [None, "", "   ", " padded", "line\nbreak"])
def test_a_command_without_a_readable_reason_is_refused(reason_admin: str | None) -> None:
    """The audit must say why sessions were ended: no reason, no revocation."""
    reason, detail = reason_of(command(reason_admin=reason_admin))

    assert "schema_violation" == reason
    assert detail.startswith("reason_admin:")


def test_a_reason_longer_than_the_bound_is_refused() -> None:
    """Every field is bounded; the audit keeps the reason verbatim."""
    reason, detail = reason_of(command(reason_admin="x" * 513))

    assert ("schema_violation", "reason_admin") == (reason, detail.split(":")[0])


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"scope": "session", "user_id": None}, "a 'session' command names its session_id"),
        ({"scope": "user", "user_id": None}, "a 'user' command names its user_id"),
        ({"scope": "user", "session_id": "s1"}, "a 'user' command names its user_id"),
        ({"scope": "all_users"}, "an 'all_users' command names neither"),
    ],
)
def test_targets_must_match_the_scope(fields: dict[str, Any], why: str) -> None:
    """A command whose target is ambiguous could end more than the operator meant."""
    reason, detail = reason_of(command(**fields))

    assert "schema_violation" == reason
    assert why in detail


def test_every_scope_with_its_targets_decodes() -> None:
    """One session (optionally with its user), one user, or the whole tenant."""
    scopes = [
        decode_operator_command(orjson.dumps(command(scope="session", session_id="s1"))).scope,
        decode_operator_command(
            orjson.dumps(command(scope="session", session_id="s1", user_id=None))
        ).scope,
        decode_operator_command(orjson.dumps(command(scope="user"))).scope,
        decode_operator_command(orjson.dumps(command(scope="all_users", user_id=None))).scope,
    ]

    assert ["session", "session", "user", "all_users"] == scopes


def test_an_unknown_kind_is_an_unknown_type() -> None:
    """Only revoke_sessions exists; anything else is dead-lettered as unknown_type."""
    reason, detail = reason_of(command(type="delete_tenant"))

    assert "unknown_type" == reason
    assert "'delete_tenant'" in detail


def test_an_unknown_scope_or_key_is_refused() -> None:
    """Unknown keys are refused, as on auth.events."""
    assert "schema_violation" == reason_of(command(scope="everyone"))[0]
    assert "schema_violation" == reason_of(command(force=True))[0]


def test_a_key_given_twice_is_refused() -> None:
    """A parser keeps the last of two keys: the target could differ from what a reader saw."""
    raw = orjson.dumps(command())[:-1] + b',"user_id":"bob"}'

    assert ("schema_violation", "user_id: duplicate key") == reason_of(raw)


def test_malformed_oversized_and_tombstone_commands_are_refused() -> None:
    """Every failure is a dead-letter reason, never an exception out of the codec."""
    assert "undecodable" == reason_of(b"{not json")[0]
    assert "undecodable" == reason_of(b"[1]")[0]
    assert "oversized" == reason_of(b" " * (MAX_COMMAND_BYTES + 1))[0]
    with pytest.raises(DecodeError) as caught:
        decode_operator_command(None)
    assert "undecodable" == caught.value.reason
