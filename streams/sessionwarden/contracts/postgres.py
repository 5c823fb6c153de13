"""The contract between services and the PostgreSQL sink (docs/DATABASE.md): how a backend bound
to a session is named, and the channel the sink notifies on. Services bind with these names
(sessionwarden/sdk/pg_guard.py); the sink finds and stops those backends by them
(sessionwarden/sink/postgres/)."""

from __future__ import annotations

import hashlib

TAG_TRANSACTION = "swt:"
"""application_name prefix of a backend bound to a session for one transaction (pooled)."""
TAG_CONNECTION = "swc:"
"""application_name prefix of a connection dedicated to one session."""
NOTIFY_CHANNEL = "sessionwarden_revoked"


def session_tag(tenant: str, session_id: str) -> str:
    """The session's name in pg_stat_activity and in NOTIFY payloads (docs/DATABASE.md, "The
    session tag"): the first 16 bytes of SHA-256, as 32 lower-case hex digits, over the UTF-8
    bytes of ``<number of characters of tenant>:<tenant>\x1f<session_id>``. The length prefix
    keeps (tenant, session) pairs apart whatever characters they hold. The database computes
    the same (``sessionwarden.session_tag(tenant, session_id)``).

    application_name is visible to every role on the server and holds at most 63 bytes, so it
    carries this digest, never the raw session id."""
    digest = hashlib.sha256(f"{len(tenant)}:{tenant}\x1f{session_id}".encode()).hexdigest()
    return digest[:32]
