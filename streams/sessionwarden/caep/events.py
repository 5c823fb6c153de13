"""OpenID CAEP 1.0 Security Event Tokens (RFC 8417, profiled by OpenID SSF 1.0) from our records.

Pure: no I/O (but reading the signing key in ``CaepConfig.from_settings``/``for_detectors``, at
start-up), no clock unless asked. ``caep_events_for(record, config)`` maps one record the
enforcer or the anomaly detectors emit onto ``(key, token)`` pairs for the CAEP topic:

=========================================  ===================  ===============================
record                                     CAEP event           initiating_entity / details
=========================================  ===================  ===============================
revocation idle_timeout, absolute_timeout  session-revoked      policy, reason_admin
revocation logout                          session-revoked      user, reason_admin
revocation permissions_revoked             session-revoked      policy, reason_admin: the roles
revocation step_up_required                session-revoked      policy, reason_admin
revocation session_limit                   session-revoked      policy, reason_admin
revocation operator                        session-revoked      admin, reason_admin
revocation signal                          session-revoked      system, reason_admin
revalidation                               token-claims-change  admin, claims: {"roles": [...]}
session_started (audit)                    session-established  user, amr when known
session_risk_changed (audit)               risk-level-change    system, principal SESSION
alert                                      risk-level-change    policy, principal USER
=========================================  ===================  ===============================

A ``session_risk_changed`` record becomes a SET only when its new risk profile is one CAEP has
a level for (``low``, ``medium``, ``high``, ``critical``: LOW, MEDIUM, HIGH, HIGH, as for
alerts); ``previous_level`` is given when the old profile has one too.

Every SET carries ``iss``, ``jti``, ``iat``, ``aud``, ``txn``, ``sub_id`` and exactly one event;
never ``sub`` nor ``exp`` (SSF 1.0 section 4.1). ``sub_id`` is an SSF complex subject of RFC 9493
``opaque`` identifiers: user, session and tenant (user and tenant for alerts). The session is
named by its keyed hash (the log lines' salted hash), never by the live id, unless the
audience is one of ``raw_session_audiences``; the record key is that hash too. ``txn`` is the
id of the cause, shared by all SETs of one cause: the input event (logout, role change) when
there is one, else the record's own id. ``jti`` is derived from the record id, the event type
and the audience, so a re-emitted record yields the same jti and receivers drop the duplicate.
Times are integer NumericDates: ``event_timestamp`` is the time of the cause and ``iat`` the
record's emission time (or ``now`` when given).

SSF requires explicit typing (header ``typ: secevent+jwt``), which needs a JOSE header, so
plain JSON claims are not an option on the wire. Without a signing key the token is an
Unsecured JWT (RFC 7519 section 6: ``alg: none``, empty signature); receivers must then get
integrity from the channel (Kafka ACLs, TLS). With a PEM private key, the token is a JWS:
RS256 for RSA (2048 bits or more), ES256 for P-256, signed with ``cryptography``.
"""

from __future__ import annotations

import base64
import functools
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pydantic import TypeAdapter, ValidationError

from sessionwarden.contracts.outputs import (
    AUDIT_EVENT_ADAPTER,
    REVOCATION_RECORD_ADAPTER,
    Alert,
    Revalidation,
    Revocation,
    SessionRiskChanged,
    SessionStarted,
)
from sessionwarden.errors import ConfigError, SessionwardenError
from sessionwarden.ops.logs import SessionHasher

if TYPE_CHECKING:
    from sessionwarden.config.settings import Settings

EVENT_TYPE_BASE: Final = "https://schemas.openid.net/secevent/caep/event-type/"
SESSION_REVOKED: Final = EVENT_TYPE_BASE + "session-revoked"
TOKEN_CLAIMS_CHANGE: Final = EVENT_TYPE_BASE + "token-claims-change"
SESSION_ESTABLISHED: Final = EVENT_TYPE_BASE + "session-established"
RISK_LEVEL_CHANGE: Final = EVENT_TYPE_BASE + "risk-level-change"
SET_TYPE: Final = "secevent+jwt"

# Fixed: the same record, event type and audience always give the same jti.
_JTI_NAMESPACE: Final = uuid.UUID("0b7f3c52-8d6e-4a4b-9f0e-2c1d5e7a9b31")
_ALERT_ADAPTER: TypeAdapter[Alert] = TypeAdapter(Alert)

SESSION_RECORD_TYPES: Final = frozenset(
    {"revocation", "revalidation", "session_started", "session_risk_changed"}
)
"""Records that become session events (the enforcer's transmitter signs these)."""
ALERT_RECORD_TYPES: Final = frozenset({"alert"})
"""Records that become risk-level-change (the detectors sign these, with a key of their own)."""

_REVOKED: Final[dict[str, tuple[str, str]]] = {
    "idle_timeout": ("policy", "Idle timeout reached"),
    "absolute_timeout": ("policy", "Absolute session lifetime reached"),
    "logout": ("user", "User logged out"),
    "permissions_revoked": ("policy", "Roles removed"),
    "step_up_required": ("policy", "Step-up authentication required for a high-risk operation"),
    "session_limit": ("policy", "Concurrent session limit reached; oldest session ended"),
    "operator": ("admin", "Ended by an operator command"),
    "signal": ("system", "Ended on an identity signal"),
}
_RISK_LEVEL: Final = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH", "critical": "HIGH"}
# auth_method values with an exact RFC 8176 "amr" counterpart; others are left out.
_AMR: Final = {
    "password": "pwd",
    "pwd": "pwd",
    "otp": "otp",
    "totp": "otp",
    "sms": "sms",
    "pin": "pin",
    "mfa": "mfa",
    "hwk": "hwk",
    "swk": "swk",
    "face": "face",
    "fpt": "fpt",
}


class CaepError(SessionwardenError):
    """A record that cannot become a Security Event Token."""


class SigningUnavailable(ConfigError):
    """A signing key is configured but cannot be used."""


@dataclass(frozen=True, slots=True)
class CaepConfig:
    """Transmitter settings. One SET per audience: SSF asks for distinct SETs for receivers
    not known to be the same entity. A signing key is loaded (and checked) at construction.
    ``signs`` is the record types this transmitter may turn into SETs: a key that signs alerts
    must never sign a session event, so each process's config names only its own records."""

    issuer: str
    audiences: tuple[str, ...]
    signing_key_pem: bytes | None = None
    key_id: str | None = None
    signs: frozenset[str] = SESSION_RECORD_TYPES | ALERT_RECORD_TYPES
    session_salt: str = field(default="", repr=False)
    """Key of the opaque session subjects (the log lines' salted hash); empty means a random
    one for this config, so subjects then change with every process."""
    raw_session_audiences: frozenset[str] = frozenset()
    """Audiences that receive the raw session id instead of the opaque one (none by default)."""
    _session_hash: Callable[[str], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ConfigError("caep issuer: must not be empty")
        if not self.audiences or not all(self.audiences):
            raise ConfigError("caep audiences: give at least one, none empty")
        unknown = sorted(self.raw_session_audiences - set(self.audiences))
        if unknown:
            raise ConfigError(f"caep raw_session_audiences: not among the audiences: {unknown}")
        if self.signing_key_pem is not None:
            _signer(self.signing_key_pem)
        object.__setattr__(self, "_session_hash", SessionHasher(self.session_salt))

    @classmethod
    def from_settings(cls, settings: Settings) -> CaepConfig | None:
        """The enforcer's CAEP transmitter settings (session events), or None when CAEP is
        off. Reads and checks the key: only the enforcer calls this."""
        caep = settings.caep
        if not caep.enabled:
            return None
        if caep.signing_key_file is None and not caep.allow_unsigned:
            raise ConfigError(
                "caep_enabled needs caep_signing_key_file (SETs are signed); unsigned SETs "
                "only with caep_allow_unsigned=true, for development"
            )
        audiences = caep.audience_list()
        raw = frozenset(a.strip() for a in caep.raw_session_audiences.split(",") if a.strip())
        if not settings.logging.salt and not set(audiences) <= raw:
            raise ConfigError(
                "caep_enabled needs log_salt: session subjects are its keyed hash of the "
                "session id (a random salt per process would change them at every restart); "
                "or name the audiences that may receive raw ids in caep_raw_session_audiences"
            )
        key = _read_key("caep_signing_key_file", caep.signing_key_file)
        return cls(
            caep.issuer,
            audiences,
            key,
            caep.key_id,
            SESSION_RECORD_TYPES,
            session_salt=settings.logging.salt,
            raw_session_audiences=raw,
        )

    @classmethod
    def for_detectors(cls, settings: Settings) -> CaepConfig | None:
        """The detectors' CAEP settings (risk-level-change only, their own issuer and key), or
        None when they publish no tokens. Never reads caep_signing_key_file."""
        caep = settings.caep
        if not caep.enabled:
            return None
        issuer, key_file = caep.detect_issuer, caep.detect_signing_key_file
        if not issuer:
            if key_file is not None:
                raise ConfigError("detect_caep_signing_key_file needs detect_caep_issuer")
            return None
        if issuer == caep.issuer:
            raise ConfigError(
                "detect_caep_issuer: must differ from caep_issuer (receivers trust the "
                "enforcer's issuer for session events, never the detectors')"
            )
        if key_file is None and not caep.allow_unsigned:
            raise ConfigError(
                "detect_caep_issuer needs detect_caep_signing_key_file (SETs are signed); "
                "unsigned SETs only with caep_allow_unsigned=true, for development"
            )
        enforcer_key = caep.signing_key_file
        if (
            key_file is not None
            and enforcer_key is not None
            and key_file.absolute() == (enforcer_key.absolute())
        ):
            raise ConfigError(
                "detect_caep_signing_key_file: must not be caep_signing_key_file (the "
                "detectors get a key of their own)"
            )
        key = _read_key("detect_caep_signing_key_file", key_file)
        return cls(issuer, caep.audience_list(), key, caep.detect_key_id, ALERT_RECORD_TYPES)

    def session_subject(self, session_id: str, audience: str) -> str:
        """What ``audience`` is told the session is: its keyed hash unless configured raw."""
        if audience in self.raw_session_audiences:
            return session_id
        return self._session_hash(session_id)

    def session_key(self, session_id: str) -> str:
        """The record key on the CAEP topic: the opaque form (raw only when every audience
        receives raw ids and no salt was given, so that keys stay stable across restarts)."""
        if not self.session_salt and set(self.audiences) <= self.raw_session_audiences:
            return session_id
        return self._session_hash(session_id)


def _read_key(name: str, path: Path | None) -> bytes | None:
    """A PEM key file's bytes (None without a path); errors name the setting, never the key."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: {exc.strerror}") from exc


@dataclass(frozen=True, slots=True)
class _Cause:
    user_id: str
    tenant: str
    session_id: str | None  # None for alerts, whose principal is the user
    record_id: str
    txn: str
    issued_at: float
    event_type: str
    event: dict[str, Any]


def caep_events_for(
    record: Mapping[str, Any], config: CaepConfig, now: float | None = None
) -> list[tuple[bytes, bytes]]:
    """The CAEP SETs for one record as ``(key, token)``: keyed by session_id (user_id for
    alerts); empty for record types without a CAEP counterpart. Raises CaepError."""
    claims_sets = set_claims_for(record, config, now)
    return [(key, encode_set(claims, config)) for key, claims in claims_sets]


def set_claims_for(
    record: Mapping[str, Any], config: CaepConfig, now: float | None = None
) -> list[tuple[bytes, dict[str, Any]]]:
    """Like :func:`caep_events_for`, with the claims sets not yet encoded."""
    cause = _cause_of(record, config.signs)
    if cause is None:
        return []
    issued_at = _numeric_date(cause.issued_at if now is None else now)
    sid = cause.session_id
    key = (cause.user_id if sid is None else config.session_key(sid)).encode()
    return [
        (
            key,
            {
                "iss": config.issuer,
                "jti": _jti(config.issuer, cause, audience),
                "iat": issued_at,
                "aud": audience,
                "txn": cause.txn,
                "sub_id": _subject(
                    cause.user_id,
                    cause.tenant,
                    None if sid is None else config.session_subject(sid, audience),
                ),
                "events": {cause.event_type: cause.event},
            },
        )
        for audience in config.audiences
    ]


def _jti(issuer: str, cause: _Cause, audience: str) -> str:
    name = "|".join((issuer, cause.event_type, cause.record_id, audience))
    return uuid.uuid5(_JTI_NAMESPACE, name).hex


def _numeric_date(value: float | datetime) -> int:
    seconds = value.timestamp() if isinstance(value, datetime) else value
    return math.floor(seconds)


def _cause_of(record: Mapping[str, Any], signs: frozenset[str]) -> _Cause | None:
    kind = str(record.get("type"))
    builder = _BUILDERS.get(kind)
    if builder is None:
        return None
    if kind not in signs:
        raise CaepError(f"this transmitter does not sign {kind} records")
    try:
        return builder(record)  # None: this record has no CAEP counterpart
    except ValidationError as exc:
        raise CaepError(f"invalid {record.get('type')} record: {exc.errors()[0]['msg']}") from exc


def _subject(user_id: str, tenant: str, session_id: str | None) -> dict[str, Any]:
    subject: dict[str, Any] = {"format": "complex", "user": {"format": "opaque", "id": user_id}}
    if session_id is not None:
        subject["session"] = {"format": "opaque", "id": session_id}
    subject["tenant"] = {"format": "opaque", "id": tenant}
    return subject


def _from_revocation_record(record: Mapping[str, Any]) -> _Cause:
    parsed = REVOCATION_RECORD_ADAPTER.validate_python(record)
    if isinstance(parsed, Revocation):
        return _revoked(parsed)
    return _claims_changed(parsed)


def _revoked(rec: Revocation) -> _Cause:
    entity, text = _REVOKED[rec.reason]
    if rec.reason == "permissions_revoked" and rec.roles_removed:
        text = f"{text}: {', '.join(rec.roles_removed)}"
    event = {"initiating_entity": entity, "reason_admin": {"en": text}}
    return _session_cause(rec, str(rec.revocation_id), SESSION_REVOKED, event)


def _claims_changed(rec: Revalidation) -> _Cause:
    event = {
        "initiating_entity": "admin",
        "reason_admin": {"en": "Roles granted: " + ", ".join(rec.roles_granted)},
        "claims": {"roles": list(rec.roles)},
    }
    return _session_cause(rec, str(rec.revalidation_id), TOKEN_CLAIMS_CHANGE, event)


def _session_cause(
    rec: Revocation | Revalidation, record_id: str, event_type: str, event: dict[str, Any]
) -> _Cause:
    """A session's SET: txn is the causing event (or the record itself), time is the cause."""
    return _Cause(
        user_id=rec.user_id,
        tenant=rec.tenant,
        session_id=rec.session_id,
        record_id=record_id,
        txn=str(rec.cause_event_id) if rec.cause_event_id is not None else record_id,
        issued_at=rec.emitted_at.timestamp(),
        event_type=event_type,
        event={"event_timestamp": _numeric_date(rec.effective_at), **event},
    )


def _established(record: Mapping[str, Any]) -> _Cause:
    rec = AUDIT_EVENT_ADAPTER.validate_python(record)
    if not isinstance(rec, SessionStarted):  # dispatch is on the type tag; this narrows it
        raise CaepError(f"expected session_started, got {rec.type}")
    event: dict[str, Any] = {
        "event_timestamp": _numeric_date(rec.occurred_at),
        "initiating_entity": "user",
    }
    amr = _AMR.get(rec.auth_method.lower())
    if amr is not None:
        event["amr"] = [amr]
    return _Cause(
        user_id=rec.user_id,
        tenant=rec.tenant,
        session_id=rec.session_id,
        record_id=str(rec.event_id),
        txn=str(rec.event_id),
        issued_at=rec.occurred_at.timestamp(),
        event_type=SESSION_ESTABLISHED,
        event=event,
    )


def _risk_changed(record: Mapping[str, Any]) -> _Cause:
    rec = _ALERT_ADAPTER.validate_python(record)
    event: dict[str, Any] = {
        "event_timestamp": _numeric_date(rec.last_seen),
        "initiating_entity": "policy",
        "principal": "USER",
        "current_level": _RISK_LEVEL[rec.severity],
        "risk_reason": rec.kind,
    }
    if rec.summary:
        event["reason_admin"] = {"en": rec.summary}
    return _Cause(
        user_id=rec.user_id,
        tenant=rec.tenant,
        session_id=None,
        record_id=str(rec.alert_id),
        txn=str(rec.alert_id),
        issued_at=rec.emitted_at.timestamp(),
        event_type=RISK_LEVEL_CHANGE,
        event=event,
    )


def _session_risk_changed(record: Mapping[str, Any]) -> _Cause | None:
    rec = AUDIT_EVENT_ADAPTER.validate_python(record)
    if not isinstance(rec, SessionRiskChanged):  # dispatch is on the type tag; this narrows it
        raise CaepError(f"expected session_risk_changed, got {rec.type}")
    level = _RISK_LEVEL.get(rec.risk_profile)
    if level is None:
        return None  # a profile CAEP has no level for
    event: dict[str, Any] = {
        "event_timestamp": _numeric_date(rec.occurred_at),
        "initiating_entity": "system",
        "principal": "SESSION",
        "current_level": level,
        "risk_reason": "risk_change",
        "reason_admin": {"en": f"Session timeouts tightened for risk profile {rec.risk_profile}"},
    }
    previous = _RISK_LEVEL.get(rec.risk_profile_before)
    if previous is not None:
        event["previous_level"] = previous
    return _Cause(
        user_id=rec.user_id,
        tenant=rec.tenant,
        session_id=rec.session_id,
        record_id=str(rec.event_id),
        txn=str(rec.cause_event_id),
        issued_at=rec.occurred_at.timestamp(),
        event_type=RISK_LEVEL_CHANGE,
        event=event,
    )


_BUILDERS: Final[dict[str, Callable[[Mapping[str, Any]], _Cause | None]]] = {
    "revocation": _from_revocation_record,
    "revalidation": _from_revocation_record,
    "session_started": _established,
    "session_risk_changed": _session_risk_changed,
    "alert": _risk_changed,
}


# --- encoding ------------------------------------------------------------------------------


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64url_decode(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def encode_set(claims: Mapping[str, Any], config: CaepConfig) -> bytes:
    """Compact serialisation: a JWS when the config has a signing key, else an Unsecured JWT."""
    if config.signing_key_pem is None:
        header: dict[str, str] = {"alg": "none", "typ": SET_TYPE}
        signer = None
    else:
        signer = _signer(config.signing_key_pem)
        header = {"alg": signer.alg, "typ": SET_TYPE}
        if config.key_id:
            header["kid"] = config.key_id
    signing_input = _b64url(orjson.dumps(header)) + b"." + _b64url(orjson.dumps(dict(claims)))
    signature = b"" if signer is None else _b64url(signer.sign(signing_input))
    return signing_input + b"." + signature


def read_unverified(token: bytes | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JOSE header and claims of a compact token, WITHOUT checking any signature (for tests
    and debugging; receivers verify with their JWT library against the transmitter's keys)."""
    raw = token.encode() if isinstance(token, str) else token
    parts = raw.split(b".")
    if len(parts) != 3:
        raise CaepError(f"a compact JWS/JWT has 3 parts, got {len(parts)}")
    try:
        header = orjson.loads(_b64url_decode(parts[0]))
        claims = orjson.loads(_b64url_decode(parts[1]))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise CaepError(f"not a compact JWT: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise CaepError("header and claims must be JSON objects")
    return header, claims


# --- signing (with the `cryptography` package) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Signer:
    alg: str
    sign: Callable[[bytes], bytes]


@functools.lru_cache(maxsize=8)
def _signer(pem: bytes) -> _Signer:
    """RS256 for RSA keys, ES256 for P-256 keys; raises SigningUnavailable with the reason."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningUnavailable(f"the CAEP signing key is not a usable PEM key: {exc}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise SigningUnavailable(f"RS256 needs an RSA key of >= 2048 bits, got {key.key_size}")
        pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return _Signer("RS256", lambda data: bytes(key.sign(data, pkcs1v15, sha256)))
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        ecdsa = ec.ECDSA(hashes.SHA256())
        decode_dss = utils.decode_dss_signature

        def sign_es256(data: bytes) -> bytes:
            r, s = decode_dss(key.sign(data, ecdsa))  # JWS wants r || s, 32 bytes each
            return bytes(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

        return _Signer("ES256", sign_es256)
    raise SigningUnavailable("the CAEP signing key must be RSA (RS256) or EC P-256 (ES256)")
