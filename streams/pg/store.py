"""The sink's database side (psycopg 3): a batch of rows and its offsets in one transaction,
then the backends of the sessions just revoked cut off. Every value goes as a parameter."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import psycopg

from schemas.errors import SessionwardenError
from streams.pg.plan import NOTIFY_CHANNEL, TAG_CONNECTION, TAG_TRANSACTION, Batch

log = logging.getLogger(__name__)

# The batch travels as one JSON parameter (half the time of ten array parameters to adapt).
_UPSERT = """
INSERT INTO sessionwarden.revoked_sessions AS r
    (tenant, session_id, user_id, reason, revocation_id, effective_at, keep_until, records,
     source_topic, source_partition, source_offset)
SELECT t.tenant, t.session_id, t.user_id, t.reason, t.revocation_id, t.effective_at,
       t.keep_until, t.records, %s, t.source_partition, t.source_offset
  FROM json_to_recordset(%s::json)
       AS t(tenant text, session_id text, user_id text, reason text, revocation_id uuid,
            effective_at timestamptz, keep_until timestamptz, records int,
            source_partition int, source_offset bigint)
ON CONFLICT (tenant, session_id) DO UPDATE SET
    user_id = EXCLUDED.user_id,
    reason = EXCLUDED.reason,
    revocation_id = EXCLUDED.revocation_id,
    effective_at = EXCLUDED.effective_at,
    keep_until = greatest(r.keep_until, EXCLUDED.keep_until),
    records = r.records + EXCLUDED.records,
    source_topic = EXCLUDED.source_topic,
    source_partition = EXCLUDED.source_partition,
    source_offset = EXCLUDED.source_offset
"""

# Advance an offset only from the value this sink last saw: another sink that took the
# partition over in between (a rebalance, a zombie) makes the update match no row.
_ADVANCE = """
UPDATE sessionwarden.sink_offsets SET next_offset = %s, updated_at = now()
 WHERE topic = %s AND partition = %s AND next_offset = %s
"""

_NOTIFY = "SELECT count(pg_notify(%s, tag)) FROM unnest(%s::text[]) AS tag"

# Cancel the running statement of backends bound to a session for a transaction (a pooled
# connection serves other sessions next); terminate connections dedicated to a session.
_CUT_OFF = """
SELECT count(*) FILTER (WHERE CASE WHEN starts_with(a.application_name, %s)
                                    THEN pg_cancel_backend(a.pid) ELSE false END),
       count(*) FILTER (WHERE CASE WHEN starts_with(a.application_name, %s)
                                    THEN pg_terminate_backend(a.pid) ELSE false END)
  FROM pg_stat_activity a
 WHERE a.pid <> pg_backend_pid()
   AND a.application_name = ANY(%s::text[])
"""

_PRUNE = """
DELETE FROM sessionwarden.revoked_sessions
 WHERE ctid = ANY(ARRAY(SELECT ctid FROM sessionwarden.revoked_sessions
                         WHERE keep_until <= %s LIMIT %s))
"""


class OffsetConflict(SessionwardenError):
    """Another sink advanced a partition's stored offset: this one must seek again."""


class RevocationStore:
    """One connection of the sink's role (the schema's owner) and what the sink does with it."""

    def __init__(self, conn: psycopg.Connection[Any], topic: str) -> None:
        self.conn = conn
        self.topic = topic

    def offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        """The next offset per partition, inserting 0 (the topic's start) for new ones."""
        wanted = sorted(set(partitions))
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO sessionwarden.sink_offsets (topic, partition, next_offset)"
                " SELECT %s, p, 0 FROM unnest(%s::int[]) AS p ON CONFLICT DO NOTHING",
                (self.topic, wanted),
            )
            rows = self.conn.execute(
                "SELECT partition, next_offset FROM sessionwarden.sink_offsets"
                " WHERE topic = %s AND partition = ANY(%s::int[])",
                (self.topic, wanted),
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def write(self, batch: Batch, seen: Mapping[int, int]) -> None:
        """Upsert the rows, advance the offsets from ``seen`` and notify, in one transaction;
        raises OffsetConflict (rolled back) when a stored offset is no longer ``seen``."""
        with self.conn.transaction():
            if batch.rows:
                rows = orjson.dumps([r._asdict() for r in batch.rows]).decode()
                self.conn.execute(_UPSERT, (self.topic, rows))
            for partition, next_offset in sorted(batch.next_offsets.items()):
                cur = self.conn.execute(
                    _ADVANCE, (next_offset, self.topic, partition, seen[partition])
                )
                if cur.rowcount != 1:
                    raise OffsetConflict(f"{self.topic}[{partition}] moved under this sink")
            if batch.rows:
                self.conn.execute(_NOTIFY, (NOTIFY_CHANNEL, batch.tags))

    def cut_off(self, tags: list[str]) -> tuple[int, int]:
        """Cancel / terminate the live backends of these sessions: (cancelled, terminated)."""
        names = [TAG_TRANSACTION + t for t in tags] + [TAG_CONNECTION + t for t in tags]
        with self.conn.transaction():
            row = self.conn.execute(_CUT_OFF, (TAG_TRANSACTION, TAG_CONNECTION, names)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def prune(self, now: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` rows past their keep_until; returns how many."""
        with self.conn.transaction():
            return self.conn.execute(_PRUNE, (now, limit)).rowcount
