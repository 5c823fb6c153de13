"""Names fixed by the specifications: event type URIs, delivery method URNs, the SET media type.

CAEP 1.0 (Final) section 3, RISC 1.0 section 2, SSF 1.0 sections 7.1.4 and 8.1.5 (the stream's
own events), RFC 8935 and RFC 8936 (delivery), RFC 8417 section 2.3 (explicit typing).
"""

from __future__ import annotations

from typing import Final

SPEC_VERSION: Final = "1_0"
"""``spec_version`` of SSF 1.0 in the transmitter's metadata."""

SET_TYPE: Final = "secevent+jwt"
"""The JOSE ``typ`` of every SET (SSF 1.0 section 4.1.3)."""
SET_MEDIA_TYPE: Final = "application/secevent+jwt"
"""The Content-Type of a pushed SET (RFC 8935 section 2)."""

PUSH_DELIVERY: Final = "urn:ietf:rfc:8935"
POLL_DELIVERY: Final = "urn:ietf:rfc:8936"
DELIVERY_METHODS: Final = (PUSH_DELIVERY, POLL_DELIVERY)

CAEP_EVENT_TYPE_BASE: Final = "https://schemas.openid.net/secevent/caep/event-type/"
SESSION_REVOKED: Final = CAEP_EVENT_TYPE_BASE + "session-revoked"
TOKEN_CLAIMS_CHANGE: Final = CAEP_EVENT_TYPE_BASE + "token-claims-change"
CREDENTIAL_CHANGE: Final = CAEP_EVENT_TYPE_BASE + "credential-change"
ASSURANCE_LEVEL_CHANGE: Final = CAEP_EVENT_TYPE_BASE + "assurance-level-change"
DEVICE_COMPLIANCE_CHANGE: Final = CAEP_EVENT_TYPE_BASE + "device-compliance-change"
SESSION_ESTABLISHED: Final = CAEP_EVENT_TYPE_BASE + "session-established"
SESSION_PRESENTED: Final = CAEP_EVENT_TYPE_BASE + "session-presented"
RISK_LEVEL_CHANGE: Final = CAEP_EVENT_TYPE_BASE + "risk-level-change"
CAEP_EVENTS: Final = frozenset(
    {
        SESSION_REVOKED,
        TOKEN_CLAIMS_CHANGE,
        CREDENTIAL_CHANGE,
        ASSURANCE_LEVEL_CHANGE,
        DEVICE_COMPLIANCE_CHANGE,
        SESSION_ESTABLISHED,
        SESSION_PRESENTED,
        RISK_LEVEL_CHANGE,
    }
)

RISC_EVENT_TYPE_BASE: Final = "https://schemas.openid.net/secevent/risc/event-type/"
ACCOUNT_CREDENTIAL_CHANGE_REQUIRED: Final = (
    RISC_EVENT_TYPE_BASE + "account-credential-change-required"
)
ACCOUNT_PURGED: Final = RISC_EVENT_TYPE_BASE + "account-purged"
ACCOUNT_DISABLED: Final = RISC_EVENT_TYPE_BASE + "account-disabled"
ACCOUNT_ENABLED: Final = RISC_EVENT_TYPE_BASE + "account-enabled"
IDENTIFIER_CHANGED: Final = RISC_EVENT_TYPE_BASE + "identifier-changed"
IDENTIFIER_RECYCLED: Final = RISC_EVENT_TYPE_BASE + "identifier-recycled"
CREDENTIAL_COMPROMISE: Final = RISC_EVENT_TYPE_BASE + "credential-compromise"
OPT_IN: Final = RISC_EVENT_TYPE_BASE + "opt-in"
OPT_OUT_INITIATED: Final = RISC_EVENT_TYPE_BASE + "opt-out-initiated"
OPT_OUT_CANCELLED: Final = RISC_EVENT_TYPE_BASE + "opt-out-cancelled"
OPT_OUT_EFFECTIVE: Final = RISC_EVENT_TYPE_BASE + "opt-out-effective"
RECOVERY_ACTIVATED: Final = RISC_EVENT_TYPE_BASE + "recovery-activated"
RECOVERY_INFORMATION_CHANGED: Final = RISC_EVENT_TYPE_BASE + "recovery-information-changed"
SESSIONS_REVOKED: Final = RISC_EVENT_TYPE_BASE + "sessions-revoked"
"""Deprecated by RISC 1.0 in favour of CAEP session-revoked, still sent by some transmitters."""
RISC_EVENTS: Final = frozenset(
    {
        ACCOUNT_CREDENTIAL_CHANGE_REQUIRED,
        ACCOUNT_PURGED,
        ACCOUNT_DISABLED,
        ACCOUNT_ENABLED,
        IDENTIFIER_CHANGED,
        IDENTIFIER_RECYCLED,
        CREDENTIAL_COMPROMISE,
        OPT_IN,
        OPT_OUT_INITIATED,
        OPT_OUT_CANCELLED,
        OPT_OUT_EFFECTIVE,
        RECOVERY_ACTIVATED,
        RECOVERY_INFORMATION_CHANGED,
        SESSIONS_REVOKED,
    }
)

SSF_EVENT_TYPE_BASE: Final = "https://schemas.openid.net/secevent/ssf/event-type/"
VERIFICATION: Final = SSF_EVENT_TYPE_BASE + "verification"
STREAM_UPDATED: Final = SSF_EVENT_TYPE_BASE + "stream-updated"
SSF_EVENTS: Final = frozenset({VERIFICATION, STREAM_UPDATED})
"""A stream's own events: always delivered, never requested (SSF 1.0 section 8.1.1)."""

STREAM_STATUSES: Final = ("enabled", "paused", "disabled")
"""A stream's status (SSF 1.0 section 8.1.2)."""
