"""Output models: exact wire bytes, round trips through the codec and field rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel, ValidationError

from sessionwarden.contracts.codec import (
    decode_alert,
    decode_audit_event,
    decode_dead_letter,
    decode_revocation_record,
    encode,
)
from sessionwarden.contracts.outputs import (
    ActivityAfterRevocation,
    Alert,
    AlertEvidence,
    DeadLetter,
    EndedSessionUsed,
    ForeignSessionEvent,
    HighRiskOperation,
    LoginAfterLogout,
    Revalidation,
    Revocation,
    RoleChanged,
    SessionEnded,
    SessionRiskChanged,
    SessionStarted,
)

RECORD_ID = UUID("5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
CAUSE_ID = UUID("0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d")
STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DEADLINE = datetime(2026, 1, 2, 11, 4, 5, tzinfo=UTC)
EMITTED = datetime(2026, 1, 2, 3, 34, 5, 250000, tzinfo=UTC)

REVOCATION = Revocation(
    revocation_id=RECORD_ID,
    session_id="s-7f3e",
    user_id="u-1842",
    tenant="acme",
    reason="idle_timeout",
    effective_at=DEADLINE,
    emitted_at=EMITTED,
    roles=["viewer"],
    permissions=["invoices:read"],
    policy_version="2026-01-01.1",
    cause_event_id=CAUSE_ID,
)
REVALIDATION = Revalidation(
    revalidation_id=RECORD_ID,
    session_id="s-7f3e",
    user_id="u-1842",
    tenant="acme",
    roles_granted=["admin"],
    roles=["admin", "viewer"],
    effective_at=STARTED,
    emitted_at=EMITTED,
    policy_version="2026-01-01.1",
)
SESSION_STARTED = SessionStarted(
    event_id=RECORD_ID,
    occurred_at=STARTED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    user_type="employee",
    risk_profile="standard",
    auth_method="password",
    roles=["viewer"],
    privilege_level=10,
    idle_timeout_s=900.0,
    absolute_timeout_s=28800.0,
    absolute_deadline=DEADLINE,
    source_ip="2001:db8::1",
    auth_time=STARTED,
)
SESSION_ENDED = SessionEnded(
    event_id=RECORD_ID,
    occurred_at=EMITTED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    reason="logout",
    started_at=STARTED,
    ended_at=EMITTED,
    duration_s=1800.25,
)
SESSION_ENDED_BY_SIGNAL = SessionEnded(
    event_id=RECORD_ID,
    occurred_at=EMITTED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    reason="signal",
    started_at=STARTED,
    ended_at=EMITTED,
    duration_s=1800.25,
    signal="credential_compromise",
    source="ssf:idp.example",
)
SESSION_RISK_CHANGED = SessionRiskChanged(
    event_id=RECORD_ID,
    occurred_at=EMITTED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    risk_profile_before="standard",
    risk_profile="high",
    idle_timeout_before_s=900.0,
    idle_timeout_s=300.0,
    absolute_deadline_before=DEADLINE,
    absolute_deadline=datetime(2026, 1, 2, 7, 4, 5, tzinfo=UTC),
    source="ssf:idp.example",
    cause_event_id=CAUSE_ID,
)
ROLE_CHANGED = RoleChanged(
    event_id=RECORD_ID,
    occurred_at=STARTED,
    user_id="u-1842",
    tenant="acme",
    roles_granted=["admin"],
    roles_removed=[],
    actor="it-ops",
    privilege_before=10,
    privilege_after=900,
    sensitive_granted=["admin"],
    live_sessions=2,
)
ENDED_SESSION_USED = EndedSessionUsed(
    event_id=RECORD_ID,
    occurred_at=EMITTED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    action="GET",
    resource="/api/v1/invoices/42",
    session_state="ended",
    ended_reason="idle_timeout",
)
HIGH_RISK_OPERATION = HighRiskOperation(
    event_id=RECORD_ID,
    occurred_at=EMITTED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    action="POST",
    resource="/api/v1/payouts",
    auth_age_s=1800.25,
    max_auth_age_s=300.0,
    allowed=False,
)
ACTIVITY_AFTER_REVOCATION = ActivityAfterRevocation(
    event_id=RECORD_ID,
    occurred_at=STARTED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    action="GET",
    resource="/api/v1/invoices/42",
    delay_s=1800.25,
    deadline=STARTED,
    reason="idle_timeout",
    cause_event_id=CAUSE_ID,
)
LOGIN_AFTER_LOGOUT = LoginAfterLogout(
    event_id=RECORD_ID,
    occurred_at=STARTED,
    user_id="u-1842",
    tenant="acme",
    session_id="s-7f3e",
    logout_at=EMITTED,
    cause_event_id=CAUSE_ID,
)
FOREIGN_SESSION_EVENT = ForeignSessionEvent(
    event_id=RECORD_ID,
    occurred_at=EMITTED,
    user_id="mallory",
    tenant="acme",
    session_id="s-7f3e",
    event_type="activity",
    owner_user_id="u-1842",
    session_state="live",
    action="GET",
    cause_event_id=CAUSE_ID,
)
ALERT = Alert(
    alert_id=RECORD_ID,
    kind="privilege_escalation",
    severity="high",
    user_id="u-1842",
    tenant="acme",
    first_seen=STARTED,
    last_seen=EMITTED,
    evidence=AlertEvidence(
        event_ids=[CAUSE_ID],
        session_ids=["s-7f3e"],
        roles=["admin"],
        counts={"grants": 1},
    ),
    summary="u-1842 gained admin while 2 sessions were live",
    emitted_at=EMITTED,
)
DEAD_LETTER = DeadLetter(
    reason="schema_violation",
    detail="occurred_at: Input should have timezone info",
    source_topic="auth.events",
    source_partition=3,
    source_offset=1042,
    key_b64="dS0xODQy",
    value_b64="eyJ0eXBlIjoibG9nb3V0In0=",
    dead_lettered_at=EMITTED,
)

REVOCATION_BYTES = (
    b'{"type":"revocation","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"revocation_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f","session_id":"s-7f3e",'
    b'"reason":"idle_timeout","effective_at":"2026-01-02T11:04:05Z",'
    b'"emitted_at":"2026-01-02T03:34:05.250000Z","roles":["viewer"],'
    b'"permissions":["invoices:read"],"roles_removed":[],"policy_version":"2026-01-01.1",'
    b'"cause_event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d"}'
)

REVALIDATION_BYTES = (
    b'{"type":"revalidation","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"revalidation_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f","session_id":"s-7f3e",'
    b'"roles_granted":["admin"],"roles":["admin","viewer"],'
    b'"effective_at":"2026-01-02T03:04:05Z","emitted_at":"2026-01-02T03:34:05.250000Z",'
    b'"policy_version":"2026-01-01.1","cause_event_id":null}'
)

SESSION_STARTED_BYTES = (
    b'{"type":"session_started","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:04:05Z","session_id":"s-7f3e","user_type":"employee",'
    b'"risk_profile":"standard","auth_method":"password","roles":["viewer"],'
    b'"privilege_level":10,"idle_timeout_s":900.0,"absolute_timeout_s":28800.0,'
    b'"absolute_deadline":"2026-01-02T11:04:05Z","source_ip":"2001:db8::1",'
    b'"auth_time":"2026-01-02T03:04:05Z","auth_time_untrusted":false}'
)

SESSION_ENDED_BYTES = (
    b'{"type":"session_ended","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:34:05.250000Z","session_id":"s-7f3e","reason":"logout",'
    b'"started_at":"2026-01-02T03:04:05Z","ended_at":"2026-01-02T03:34:05.250000Z",'
    b'"duration_s":1800.25}'
)

SESSION_ENDED_BY_SIGNAL_BYTES = (
    b'{"type":"session_ended","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:34:05.250000Z","session_id":"s-7f3e","reason":"signal",'
    b'"started_at":"2026-01-02T03:04:05Z","ended_at":"2026-01-02T03:34:05.250000Z",'
    b'"duration_s":1800.25,"signal":"credential_compromise","source":"ssf:idp.example"}'
)
SESSION_RISK_CHANGED_BYTES = (
    b'{"type":"session_risk_changed","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:34:05.250000Z","session_id":"s-7f3e",'
    b'"risk_profile_before":"standard","risk_profile":"high",'
    b'"idle_timeout_before_s":900.0,"idle_timeout_s":300.0,'
    b'"absolute_deadline_before":"2026-01-02T11:04:05Z",'
    b'"absolute_deadline":"2026-01-02T07:04:05Z","ended":false,"source":"ssf:idp.example",'
    b'"cause_event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d"}'
)

ROLE_CHANGED_BYTES = (
    b'{"type":"role_changed","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:04:05Z","roles_granted":["admin"],"roles_removed":[],'
    b'"actor":"it-ops","privilege_before":10,"privilege_after":900,'
    b'"sensitive_granted":["admin"],"live_sessions":2}'
)

ENDED_SESSION_USED_BYTES = (
    b'{"type":"ended_session_used","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:34:05.250000Z","session_id":"s-7f3e","action":"GET",'
    b'"resource":"/api/v1/invoices/42","session_state":"ended",'
    b'"ended_reason":"idle_timeout"}'
)

HIGH_RISK_OPERATION_BYTES = (
    b'{"type":"high_risk_operation","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:34:05.250000Z","session_id":"s-7f3e","action":"POST",'
    b'"resource":"/api/v1/payouts","auth_age_s":1800.25,"max_auth_age_s":300.0,'
    b'"allowed":false}'
)

ACTIVITY_AFTER_REVOCATION_BYTES = (
    b'{"type":"activity_after_revocation","schema_version":1,"user_id":"u-1842",'
    b'"tenant":"acme","event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:04:05Z","session_id":"s-7f3e","action":"GET",'
    b'"resource":"/api/v1/invoices/42","delay_s":1800.25,'
    b'"deadline":"2026-01-02T03:04:05Z","reason":"idle_timeout",'
    b'"cause_event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d"}'
)

LOGIN_AFTER_LOGOUT_BYTES = (
    b'{"type":"login_after_logout","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:04:05Z","session_id":"s-7f3e",'
    b'"logout_at":"2026-01-02T03:34:05.250000Z",'
    b'"cause_event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d"}'
)

FOREIGN_SESSION_EVENT_BYTES = (
    b'{"type":"foreign_session_event","schema_version":1,"user_id":"mallory","tenant":"acme",'
    b'"event_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",'
    b'"occurred_at":"2026-01-02T03:34:05.250000Z","session_id":"s-7f3e",'
    b'"event_type":"activity","owner_user_id":"u-1842","session_state":"live",'
    b'"action":"GET","cause_event_id":"0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d"}'
)

ALERT_BYTES = (
    b'{"type":"alert","schema_version":1,"user_id":"u-1842","tenant":"acme",'
    b'"alert_id":"5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f","kind":"privilege_escalation",'
    b'"severity":"high","first_seen":"2026-01-02T03:04:05Z",'
    b'"last_seen":"2026-01-02T03:34:05.250000Z",'
    b'"evidence":{"event_ids":["0b9e1c3a-5d7f-4a2b-8c6d-1e3f5a7b9c0d"],'
    b'"session_ids":["s-7f3e"],"roles":["admin"],"counts":{"grants":1}},'
    b'"summary":"u-1842 gained admin while 2 sessions were live","suppressed":0,'
    b'"emitted_at":"2026-01-02T03:34:05.250000Z"}'
)

DEAD_LETTER_BYTES = (
    b'{"type":"dead_letter","schema_version":1,"reason":"schema_violation",'
    b'"detail":"occurred_at: Input should have timezone info","source_topic":"auth.events",'
    b'"source_partition":3,"source_offset":1042,"key_b64":"dS0xODQy",'
    b'"value_b64":"eyJ0eXBlIjoibG9nb3V0In0=",'
    b'"dead_lettered_at":"2026-01-02T03:34:05.250000Z"}'
)

Decoder = Callable[[bytes], Any]

PINNED: list[tuple[BaseModel, bytes, Decoder]] = [
    (REVOCATION, REVOCATION_BYTES, decode_revocation_record),
    (REVALIDATION, REVALIDATION_BYTES, decode_revocation_record),
    (SESSION_STARTED, SESSION_STARTED_BYTES, decode_audit_event),
    (SESSION_ENDED, SESSION_ENDED_BYTES, decode_audit_event),
    (SESSION_ENDED_BY_SIGNAL, SESSION_ENDED_BY_SIGNAL_BYTES, decode_audit_event),
    (SESSION_RISK_CHANGED, SESSION_RISK_CHANGED_BYTES, decode_audit_event),
    (ROLE_CHANGED, ROLE_CHANGED_BYTES, decode_audit_event),
    (ENDED_SESSION_USED, ENDED_SESSION_USED_BYTES, decode_audit_event),
    (HIGH_RISK_OPERATION, HIGH_RISK_OPERATION_BYTES, decode_audit_event),
    (ACTIVITY_AFTER_REVOCATION, ACTIVITY_AFTER_REVOCATION_BYTES, decode_audit_event),
    (LOGIN_AFTER_LOGOUT, LOGIN_AFTER_LOGOUT_BYTES, decode_audit_event),
    (FOREIGN_SESSION_EVENT, FOREIGN_SESSION_EVENT_BYTES, decode_audit_event),
    (ALERT, ALERT_BYTES, decode_alert),
    (DEAD_LETTER, DEAD_LETTER_BYTES, decode_dead_letter),
]
IDS = [type(model).__name__ for model, _, _ in PINNED]


@pytest.mark.parametrize(("model", "wire", "decode"), PINNED, ids=IDS)
def test_output_encodes_to_pinned_wire_bytes(
    model: BaseModel, wire: bytes, decode: Decoder
) -> None:
    """Gateways, SIEMs and replay tools parse these bytes; any change is a contract change."""
    assert wire == encode(model)


@pytest.mark.parametrize(("model", "wire", "decode"), PINNED, ids=IDS)
def test_every_output_round_trips_through_its_decoder(
    model: BaseModel, wire: bytes, decode: Decoder
) -> None:
    """Consumers of our own topics (tests, replay, the detectors) must read back what we wrote."""
    assert model == decode(encode(model))
    assert model == decode(wire)


def test_revocation_record_union_picks_the_model_by_type() -> None:
    """Gateways act differently on revocations and revalidations sharing one topic."""
    assert (Revocation, Revalidation) == (
        type(decode_revocation_record(REVOCATION_BYTES)),
        type(decode_revocation_record(REVALIDATION_BYTES)),
    )


def test_revocation_defaults_match_the_contract() -> None:
    """roles_removed and cause_event_id are optional for timeout-driven revocations."""
    revocation = Revocation.model_validate(
        REVOCATION.model_dump(exclude={"roles_removed", "cause_event_id"})
    )

    assert ([], None) == (revocation.roles_removed, revocation.cause_event_id)


def test_alert_suppressed_defaults_to_zero_and_evidence_to_empty() -> None:
    """Detectors may emit an alert with no suppression history and minimal evidence."""
    alert = Alert.model_validate(
        {**ALERT.model_dump(exclude={"suppressed"}), "evidence": AlertEvidence()}
    )

    assert 0 == alert.suppressed
    assert AlertEvidence(event_ids=[], session_ids=[], roles=[], counts={}) == alert.evidence


@pytest.mark.parametrize(
    ("evidence", "field"),
    [
        ({"event_ids": [str(CAUSE_ID)] * 257}, "event_ids"),
        ({"session_ids": ["s"] * 257}, "session_ids"),
        ({"roles": ["r"] * 65}, "roles"),
        ({"counts": {f"k{i}": i for i in range(33)}}, "counts"),
        ({"counts": {"k" * 65: 1}}, "counts"),
    ],
)
def test_alert_evidence_is_bounded(evidence: dict[str, Any], field: str) -> None:
    """Evidence grows with attacker-controlled activity, so every collection is capped."""
    with pytest.raises(ValidationError) as caught:
        AlertEvidence.model_validate(evidence)

    assert field == caught.value.errors()[0]["loc"][0]


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (SESSION_STARTED, "idle_timeout_s", 0.0),
        (SESSION_STARTED, "absolute_timeout_s", float("inf")),
        (SESSION_STARTED, "privilege_level", 1001),
        (SESSION_ENDED, "duration_s", -1.0),
        (HIGH_RISK_OPERATION, "auth_age_s", float("nan")),
        (ROLE_CHANGED, "live_sessions", -1),
        (ALERT, "suppressed", -1),
        (DEAD_LETTER, "source_offset", 2**63),
        (DEAD_LETTER, "detail", "d" * 2049),
        (DEAD_LETTER, "value_b64", "A" * 1_500_001),
        (REVOCATION, "reason", "expired"),
        (REVOCATION, "policy_version", "v" * 65),
    ],
)
def test_output_numbers_and_strings_are_range_checked(
    model: BaseModel, field: str, value: object
) -> None:
    """Values that could not be encoded as JSON, or that make no sense, are refused at creation."""
    with pytest.raises(ValidationError) as caught:
        type(model).model_validate({**model.model_dump(), field: value})

    assert (field,) == caught.value.errors()[0]["loc"]


def test_dead_letter_has_no_user_fields() -> None:
    """Undecodable inputs have no trustworthy user, so the dead letter does not claim one."""
    assert {"user_id", "tenant"}.isdisjoint(DeadLetter.model_fields)


def test_timestamps_are_aware_utc_after_validation() -> None:
    """All output timestamps are UTC so the encoder always writes a trailing Z."""
    wire = SESSION_ENDED_BYTES.replace(b"03:04:05Z", b"04:04:05+01:00")

    decoded = decode_audit_event(wire)

    assert isinstance(decoded, SessionEnded)
    assert SESSION_ENDED == decoded
    assert [UTC, UTC, UTC] == [
        decoded.occurred_at.tzinfo,
        decoded.started_at.tzinfo,
        decoded.ended_at.tzinfo,
    ]
