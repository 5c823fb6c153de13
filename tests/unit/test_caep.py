"""CAEP Security Event Tokens checked against the rules of RFC 8417, SSF 1.0 and CAEP 1.0."""

from __future__ import annotations

import base64
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from sessionwarden.caep.events import (
    RISK_LEVEL_CHANGE,
    SESSION_ESTABLISHED,
    SESSION_REVOKED,
    TOKEN_CLAIMS_CHANGE,
    CaepConfig,
    CaepError,
    caep_events_for,
    read_unverified,
)
from sessionwarden.config.settings import load_settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.contracts.inputs import RiskChange
from sessionwarden.enforcer.engine import records
from sessionwarden.enforcer.engine.sessions import Session
from sessionwarden.errors import ConfigError
from sessionwarden.ops.logs import SessionHasher

T0 = 1_800_000_000.25
SALT = "caep-unit-salt"
CONFIG = CaepConfig(
    "https://sessionwarden.example", ("https://rp.example/caep",), session_salt=SALT
)
S1 = SessionHasher(SALT)("s-1")  # what receivers are told session s-1 is
CAEP_EVENTS = {SESSION_REVOKED, TOKEN_CLAIMS_CHANGE, SESSION_ESTABLISHED, RISK_LEVEL_CHANGE}
SUBJECT_MEMBERS = {"user", "device", "session", "application", "tenant", "org_unit", "group"}
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")  # BCP 47, simplified


def session(session_id: str = "s-1", roles: tuple[str, ...] = ("viewer", "editor")) -> Session:
    times = (T0, T0, T0, 300.0, T0 + 3600)
    return Session(("acme", session_id), "alice", "customer", "medium", *times, roles, ())


def revoked(reason: str, cause: uuid.UUID | None = None, **kw: Any) -> dict[str, Any]:
    return records.revocation(session(), reason, T0 + 300, T0 + 301.9, "v1", cause, **kw)


def check_set(token: bytes) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Assert the SSF/CAEP rules every SET we emit must meet; return claims, event type, event."""
    header, claims = read_unverified(token)
    assert {"alg": "none", "typ": "secevent+jwt"} == header  # SSF 4.1.1: explicit typing
    assert token.endswith(b"."), "an Unsecured JWT has an empty signature (RFC 7519 6.1)"
    assert {"iss", "jti", "iat", "aud", "txn", "sub_id", "events"} == set(claims)  # no sub, exp
    assert isinstance(claims["iat"], int) and claims["jti"] and claims["txn"]
    assert 1 == len(claims["events"]), "exactly one event"
    [(event_type, event)] = claims["events"].items()
    assert event_type in CAEP_EVENTS
    assert isinstance(event["event_timestamp"], int)
    assert event["event_timestamp"] <= claims["iat"]
    assert event.get("initiating_entity", "user") in {"admin", "user", "policy", "system"}
    for tag, text in event.get("reason_admin", {"en": "x"}).items():
        assert LANGUAGE_TAG.match(tag) and text
    subject = claims["sub_id"]
    assert "complex" == subject.pop("format")
    assert {"user", "tenant"} <= set(subject) <= SUBJECT_MEMBERS
    for member in subject.values():
        assert "opaque" == member["format"] and member["id"]
    return claims, event_type, event


def only_set(record: dict[str, Any]) -> tuple[bytes, dict[str, Any], str, dict[str, Any]]:
    [(key, token)] = caep_events_for(record, CONFIG)
    return (key, *check_set(token))


@pytest.mark.parametrize(
    ("reason", "entity", "admin_text"),
    [
        ("idle_timeout", "policy", "Idle timeout reached"),
        ("absolute_timeout", "policy", "Absolute session lifetime reached"),
        ("logout", "user", "User logged out"),
        ("step_up_required", "policy", "Step-up authentication required for a high-risk operation"),
        ("session_limit", "policy", "Concurrent session limit reached; oldest session ended"),
        ("operator", "admin", "Ended by an operator command"),
        ("signal", "system", "Ended on an identity signal"),
    ],
)
def test_each_revocation_reason_becomes_session_revoked(
    reason: str, entity: str, admin_text: str
) -> None:
    """Receivers end the session; initiating_entity says whether policy or the user did it."""
    key, claims, event_type, event = only_set(revoked(reason))
    assert (S1.encode(), SESSION_REVOKED) == (key, event_type)
    assert {
        "event_timestamp": math.floor(T0 + 300),
        "initiating_entity": entity,
        "reason_admin": {"en": admin_text},
    } == event
    assert math.floor(T0 + 301.9) == claims["iat"]


def test_session_revoked_names_the_user_session_and_tenant_as_opaque_ids() -> None:
    """SSF complex subject: receivers match the session of that user in that tenant."""
    _, claims, _, _ = only_set(revoked("idle_timeout"))
    assert {
        "user": {"format": "opaque", "id": "alice"},
        "session": {"format": "opaque", "id": S1},
        "tenant": {"format": "opaque", "id": "acme"},
    } == claims["sub_id"]


def test_a_deadline_revocation_uses_its_own_id_as_txn() -> None:
    """No input event caused it; the deterministic revocation id identifies the cause."""
    record = revoked("absolute_timeout")
    _, claims, _, _ = only_set(record)
    assert str(record["revocation_id"]) == claims["txn"]


def test_all_sets_of_one_role_change_share_its_txn() -> None:
    """SSF txn: receivers correlate the revocations and claim changes of one cause."""
    cause = uuid.uuid4()
    removal = revoked("permissions_revoked", cause, roles_removed=["editor", "admin"])
    other = records.revocation(session("s-2"), "permissions_revoked", T0, T0, "v1", cause)
    grant = records.revalidation(session("s-3"), ["auditor"], T0, T0, "v1", cause)
    sets = [only_set(doc) for doc in (removal, other, grant)]
    assert {str(cause)} == {claims["txn"] for _, claims, _, _ in sets}
    assert 3 == len({claims["jti"] for _, claims, _, _ in sets})
    assert {"en": "Roles removed: editor, admin"} == sets[0][3]["reason_admin"]
    assert "policy" == sets[0][3]["initiating_entity"]


def test_a_revalidation_becomes_token_claims_change_with_the_new_roles() -> None:
    """CAEP requires the changed claims with their new values."""
    record = records.revalidation(session(), ["auditor"], T0, T0 + 1, "v1", uuid.uuid4())
    key, _, event_type, event = only_set(record)
    assert (S1.encode(), TOKEN_CLAIMS_CHANGE) == (key, event_type)
    assert {"roles": ["viewer", "editor"]} == event["claims"]
    assert ("admin", {"en": "Roles granted: auditor"}) == (
        event["initiating_entity"],
        event["reason_admin"],
    )


@pytest.mark.parametrize(("auth_method", "amr"), [("password", ["pwd"]), ("webauthn", None)])
def test_session_started_becomes_session_established(auth_method: str, amr: Any) -> None:
    """amr is only stated when our auth_method has an exact RFC 8176 counterpart."""
    record = records.session_started(session(), auth_method, 10, None, T0)
    key, claims, event_type, event = only_set(record)
    assert (S1.encode(), SESSION_ESTABLISHED) == (key, event_type)
    assert (math.floor(T0), amr) == (event["event_timestamp"], event.get("amr"))
    assert str(record["event_id"]) == claims["txn"]


def alert(severity: str, summary: str = "3 expirations in 1h") -> dict[str, Any]:
    return {
        "type": "alert",
        "alert_id": uuid.uuid4(),
        "user_id": "alice",
        "tenant": "acme",
        "kind": "repeated_expirations",
        "severity": severity,
        "first_seen": datetime.fromtimestamp(T0 - 60, UTC),
        "last_seen": datetime.fromtimestamp(T0, UTC),
        "evidence": {"session_ids": ["s-1", "s-2"]},
        "summary": summary,
        "emitted_at": datetime.fromtimestamp(T0 + 2, UTC),
    }


@pytest.mark.parametrize(
    ("severity", "level"),
    [("low", "LOW"), ("medium", "MEDIUM"), ("high", "HIGH"), ("critical", "HIGH")],
)
def test_an_alert_becomes_a_user_risk_level_change(severity: str, level: str) -> None:
    """CAEP has three levels; the principal is the user, so the subject has no session."""
    key, claims, event_type, event = only_set(alert(severity))
    assert (b"alice", RISK_LEVEL_CHANGE) == (key, event_type)
    assert ("USER", level, "repeated_expirations") == (
        event["principal"],
        event["current_level"],
        event["risk_reason"],
    )
    assert "session" not in claims["sub_id"]
    assert {"en": "3 expirations in 1h"} == event["reason_admin"]


def test_an_alert_without_summary_has_no_empty_reason() -> None:
    """reason_admin must hold at least one message when present."""
    _, _, _, event = only_set(alert("low", summary=""))
    assert "reason_admin" not in event


def risk_changed(before: str, after: str) -> dict[str, Any]:
    sess = session()
    before_state = (before, sess.idle_timeout, sess.absolute_deadline)
    sess.risk_profile, sess.absolute_deadline = after, T0 + 1800
    ev = RiskChange(
        event_id=uuid.UUID(int=7),
        occurred_at=datetime.fromtimestamp(T0 + 60, UTC),
        user_id="alice",
        tenant="acme",
        source="ssf:idp",
        risk_profile=after,
    )
    return records.session_risk_changed(ev, sess, T0 + 60, before_state, False)


def test_a_tightened_session_becomes_a_session_risk_level_change() -> None:
    """The enforcer's own record of a risk change: principal SESSION, the levels as for
    alerts, the risk change event as txn."""
    key, claims, event_type, event = only_set(risk_changed("medium", "high"))
    assert (S1.encode(), RISK_LEVEL_CHANGE) == (key, event_type)
    assert {
        "event_timestamp": math.floor(T0 + 60),
        "initiating_entity": "system",
        "principal": "SESSION",
        "current_level": "HIGH",
        "previous_level": "MEDIUM",
        "risk_reason": "risk_change",
        "reason_admin": {"en": "Session timeouts tightened for risk profile high"},
    } == event
    assert (str(uuid.UUID(int=7)), S1) == (claims["txn"], claims["sub_id"]["session"]["id"])


def test_a_risk_profile_without_a_caep_level_gives_no_set() -> None:
    """CAEP's current_level is required: a profile outside low..critical has none."""
    assert [] == caep_events_for(risk_changed("medium", "contractor"), CONFIG)
    _, _, _, event = only_set(risk_changed("standard", "low"))
    assert "previous_level" not in event


@pytest.mark.parametrize("kind", ["session_ended", "role_changed", "dead_letter", None])
def test_records_without_a_caep_counterpart_give_nothing(kind: str | None) -> None:
    """session_ended duplicates the revocation's SET; the rest are internal."""
    assert [] == caep_events_for({"type": kind}, CONFIG)


def test_each_audience_gets_its_own_set_with_its_own_jti() -> None:
    """SSF: receivers not known to be one entity get distinct SETs."""
    config = CaepConfig("https://sw.example", ("https://a.example", "https://b.example"))
    sets = [read_unverified(token)[1] for _, token in caep_events_for(revoked("logout"), config)]
    assert ["https://a.example", "https://b.example"] == [c["aud"] for c in sets]
    assert 2 == len({c["jti"] for c in sets})
    assert 1 == len({c["txn"] for c in sets})


def test_a_re_emitted_record_gives_the_same_token_so_receivers_drop_the_duplicate() -> None:
    """The enforcer's ids are deterministic; jti and iat follow, so the SET is identical."""
    record = revoked("idle_timeout")
    assert caep_events_for(record, CONFIG) == caep_events_for(dict(record), CONFIG)
    later = caep_events_for(record, CONFIG, now=T0 + 999)
    assert math.floor(T0 + 999) == read_unverified(later[0][1])[1]["iat"]


def test_records_read_back_from_the_wire_give_the_same_tokens() -> None:
    """The enforcer passes datetimes and UUIDs; a consumer of the topic passes JSON strings."""
    record = revoked("permissions_revoked", uuid.uuid4(), roles_removed=["editor"])
    from_wire = orjson.loads(encode_dict(record))
    assert caep_events_for(record, CONFIG) == caep_events_for(from_wire, CONFIG)


def test_an_invalid_record_is_refused_with_a_caep_error() -> None:
    """A malformed record must not become a token with missing claims."""
    record = revoked("idle_timeout")
    del record["session_id"]
    with pytest.raises(CaepError, match="revocation"):
        caep_events_for(record, CONFIG)


@pytest.mark.parametrize(("issuer", "audiences"), [("", ("a",)), ("i", ()), ("i", ("",))])
def test_config_refuses_empty_issuer_or_audiences(issuer: str, audiences: tuple[str, ...]) -> None:
    """iss and aud are what receivers validate first."""
    with pytest.raises(ConfigError):
        CaepConfig(issuer, audiences)


def test_read_unverified_refuses_what_is_not_a_compact_jwt() -> None:
    """Garbage must fail loudly rather than yield empty claims."""
    with pytest.raises(CaepError):
        read_unverified(b"only.two")
    with pytest.raises(CaepError):
        read_unverified(b"bm90IGpzb24.e30.")


def b64url_decode(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_signed_set_verifies_with_the_public_key(alg: str) -> None:
    """JWS per RFC 7515/7518: RS256 PKCS#1 v1.5, ES256 as r||s over the signing input."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    config = CaepConfig("https://sw.example", ("https://rp.example",), pem, key_id="k1")
    [(_, token)] = caep_events_for(revoked("logout"), config)
    header, _ = read_unverified(token)
    assert {"alg": alg, "typ": "secevent+jwt", "kid": "k1"} == header
    signing_input, _, signature = token.rpartition(b".")
    raw = b64url_decode(signature)
    if alg == "RS256":
        key.public_key().verify(raw, signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        der = utils.encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )
        key.public_key().verify(der, signing_input, ec.ECDSA(hashes.SHA256()))


def test_session_events_carry_an_opaque_session_subject_by_default() -> None:
    """A live session id is a bearer credential: no audience gets it unless configured to."""
    config = CaepConfig("https://sw.example", ("https://a.example",), session_salt=SALT)
    opaque = SessionHasher(SALT)("s-1")
    started = records.session_started(session(), "password", 10, None, T0)
    grant = records.revalidation(session(), ["auditor"], T0, T0 + 1, "v1", uuid.uuid4())
    for record in (started, grant, revoked("logout")):
        [(key, token)] = caep_events_for(record, config)
        assert b"s-1" not in token and b"s-1" != key
        claims = read_unverified(token)[1]
        assert ({"format": "opaque", "id": opaque}, opaque.encode()) == (
            claims["sub_id"]["session"],
            key,
        ), record["type"]


def test_an_audience_may_be_configured_to_receive_the_raw_session_id() -> None:
    """A receiver that matches sessions by the id it issued opts in; the others still do not."""
    config = CaepConfig(
        "https://sw.example",
        ("https://raw.example", "https://other.example"),
        session_salt=SALT,
        raw_session_audiences=frozenset({"https://raw.example"}),
    )
    started = records.session_started(session(), "password", 10, None, T0)
    by_audience = {
        claims["aud"]: claims["sub_id"]["session"]["id"]
        for claims in (read_unverified(t)[1] for _, t in caep_events_for(started, config))
    }
    expected = {"https://raw.example": "s-1", "https://other.example": SessionHasher(SALT)("s-1")}
    assert expected == by_audience


def test_a_raw_session_audience_must_be_one_of_the_audiences() -> None:
    """A typo must not silently leave the intended receiver without matches."""
    with pytest.raises(ConfigError, match="raw_session_audiences"):
        CaepConfig(
            "https://sw.example",
            ("https://a.example",),
            session_salt=SALT,
            raw_session_audiences=frozenset({"https://b.example"}),
        )


def test_the_enforcers_caep_settings_need_a_stable_salt_for_opaque_subjects() -> None:
    """A random salt per process would change every subject at each restart."""
    caep = {
        "caep_enabled": True,
        "caep_issuer": "https://sw",
        "caep_audiences": "https://rp, https://raw",
        "caep_allow_unsigned": True,
    }
    with pytest.raises(ConfigError, match="log_salt"):
        CaepConfig.from_settings(load_settings(**caep))
    config = CaepConfig.from_settings(
        load_settings(**caep, log_salt="s", caep_raw_session_audiences="https://raw")
    )
    assert config is not None
    assert ("s", frozenset({"https://raw"})) == (
        config.session_salt,
        config.raw_session_audiences,
    )
    everyone_raw = load_settings(**caep, caep_raw_session_audiences="https://rp,https://raw")
    assert CaepConfig.from_settings(everyone_raw) is not None
