"""Service-side clients: the revocation listener and the ASGI middleware built on it."""

from __future__ import annotations

from streams.clients.asgi import (
    RevocationMiddleware,
    RevocationView,
    first_of,
    session_id_from_cookie,
    session_id_from_header,
)
from streams.clients.listener import ListenerError, ListenerStats, RevocationListener
from streams.clients.revocation_set import RevocationSet, RevokedEntry

__all__ = [
    "ListenerError",
    "ListenerStats",
    "RevocationListener",
    "RevocationMiddleware",
    "RevocationSet",
    "RevocationView",
    "RevokedEntry",
    "first_of",
    "session_id_from_cookie",
    "session_id_from_header",
]
