"""Service-side clients: the revocation listener and the ASGI middleware built on it."""

from __future__ import annotations

from streams.clients.asgi import (
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
from streams.clients.lifetime import lifetime_left, within_lifetime
from streams.clients.listener import ListenerError, ListenerStats, RevocationListener
from streams.clients.revocation_set import RevocationSet, RevokedEntry
from streams.clients.tenant_view import TenantView

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
