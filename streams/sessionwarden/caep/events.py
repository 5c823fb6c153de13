"""OpenID CAEP 1.0 Security Event Tokens (RFC 8417, profiled by OpenID SSF 1.0) for the CAEP topic.

Pure: no I/O (but reading the signing key in ``CaepConfig.from_settings``/``for_detectors``, at
start-up), no clock unless asked. ``caep_events_for(record, config)`` maps one record the
enforcer or the anomaly detectors emit (through :mod:`sessionwarden.ssf.causes`, which has the
table of records and events) onto ``(key, token)`` pairs for the CAEP topic.

Every SET carries ``iss``, ``jti``, ``iat``, ``aud``, ``txn``, ``sub_id`` and exactly one event;
never ``sub`` nor ``exp`` (SSF 1.0 section 4.1). ``sub_id`` is an SSF complex subject of RFC 9493
``opaque`` identifiers: user, session and tenant (user and tenant for alerts). The session is
named by its keyed hash (the log lines' salted hash), never by the live id, unless the
audience is one of ``raw_session_audiences``; the record key is that hash too. One SET per
audience, each with its own jti (:func:`sessionwarden.ssf.causes.jti`). ``iat`` is the
record's emission time (or ``now`` when given). Encoding and signing are
:mod:`sessionwarden.ssf.tokens`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sessionwarden.errors import ConfigError
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ssf.causes import (
    ALERT_RECORD_TYPES,
    SESSION_RECORD_TYPES,
    cause_of,
    numeric_date,
    set_claims,
)
from sessionwarden.ssf.tokens import SetSigner, encode_set, read_key_file, signer_for

if TYPE_CHECKING:
    from sessionwarden.config.settings import Settings


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
            signer_for(self.signing_key_pem)  # checks the key now, at start-up
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
        key = read_key_file("caep_signing_key_file", caep.signing_key_file)
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
        key = read_key_file("detect_caep_signing_key_file", key_file)
        return cls(issuer, caep.audience_list(), key, caep.detect_key_id, ALERT_RECORD_TYPES)

    @property
    def signer(self) -> SetSigner | None:
        """The key's signer (None for unsigned tokens)."""
        return None if self.signing_key_pem is None else signer_for(self.signing_key_pem)

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


def caep_events_for(
    record: Mapping[str, Any], config: CaepConfig, now: float | None = None
) -> list[tuple[bytes, bytes]]:
    """The CAEP SETs for one record as ``(key, token)``: keyed by session_id (user_id for
    alerts); empty for record types without a CAEP counterpart. Raises SetError."""
    claims_sets = set_claims_for(record, config, now)
    return [(key, encode_set(claims, config.signer, config.key_id)) for key, claims in claims_sets]


def set_claims_for(
    record: Mapping[str, Any], config: CaepConfig, now: float | None = None
) -> list[tuple[bytes, dict[str, Any]]]:
    """Like :func:`caep_events_for`, with the claims sets not yet encoded."""
    cause = cause_of(record, config.signs)
    if cause is None:
        return []
    issued_at = numeric_date(cause.issued_at if now is None else now)
    sid = cause.session_id
    key = (cause.user_id if sid is None else config.session_key(sid)).encode()
    return [
        (
            key,
            set_claims(
                cause,
                issuer=config.issuer,
                audience=audience,
                jti_scope=audience,
                issued_at=issued_at,
                session=None if sid is None else config.session_subject(sid, audience),
            ),
        )
        for audience in config.audiences
    ]
