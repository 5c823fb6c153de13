"""Service-side clients: the revocation listener and the ASGI middleware built on it."""

from __future__ import annotations

from sessionwarden.sdk.asgi import (
    AmbiguousIdentity,
    RevocationMiddleware,
    RevocationView,
    SessionIdentity,
    checked_session,
    constant,
    first_of,
    from_cookie,
    from_header,
    one_of,
    session_id_from_cookie,
    session_id_from_header,
    tenant_from_cookie,
    tenant_from_header,
)
from sessionwarden.sdk.lifetime import lifetime_left, within_lifetime
from sessionwarden.sdk.listener import ListenerError, ListenerStats, RevocationListener
from sessionwarden.sdk.revocation_set import RevocationSet, RevokedEntry
from sessionwarden.sdk.tenant_view import TenantView

__all__ = [
    "AmbiguousIdentity",
    "ListenerError",
    "ListenerStats",
    "RevocationListener",
    "RevocationMiddleware",
    "RevocationSet",
    "RevocationView",
    "RevokedEntry",
    "SessionIdentity",
    "TenantView",
    "checked_session",
    "constant",
    "first_of",
    "from_cookie",
    "from_header",
    "lifetime_left",
    "one_of",
    "session_id_from_cookie",
    "session_id_from_header",
    "tenant_from_cookie",
    "tenant_from_header",
    "within_lifetime",
]
