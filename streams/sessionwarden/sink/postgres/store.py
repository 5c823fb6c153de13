"""The sink's database side (psycopg 3): a batch of rows and its offsets in one transaction,
then the backends of the sessions just revoked cut off. Every value goes as a parameter."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import psycopg

from sessionwarden.contracts.postgres import NOTIFY_CHANNEL
from sessionwarden.errors import SessionwardenError
from sessionwarden.sink.postgres.plan import Batch

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

# The first copy of a tenant_revocation holds the tenant (again: a replayed copy keeps its
# hold); the complete copy sets the release offsets of a hold that stands (none: nothing held).
_HOLD = """
INSERT INTO sessionwarden.revoked_tenants AS h
    (tenant, source_partition, revocation_id, command_id, started_by, effective_at, keep_until)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant, source_partition) DO UPDATE SET
    revocation_id = EXCLUDED.revocation_id,
    command_id = EXCLUDED.command_id,
    started_by = EXCLUDED.started_by,
    effective_at = EXCLUDED.effective_at,
    keep_until = greatest(h.keep_until, EXCLUDED.keep_until),
    release_offsets = CASE WHEN h.revocation_id = EXCLUDED.revocation_id
                           THEN h.release_offsets END
"""
_RELEASE_AT = """
UPDATE sessionwarden.revoked_tenants SET release_offsets = %s::jsonb
 WHERE tenant = %s AND source_partition = %s AND revocation_id = %s
"""
# Holds whose every per-session row is stored: each partition is read through the end offset
# it had when the complete copy was read, by a stored offset or by this sink's own consumer
# position (%s, JSON: what it consumed is stored; a position is past the transaction markers,
# which stored offsets never name). Returns how many holds still wait for their release.
_RELEASE = """
WITH released AS (
    DELETE FROM sessionwarden.revoked_tenants h
     WHERE h.release_offsets IS NOT NULL
       AND NOT EXISTS (
           SELECT 1 FROM jsonb_each_text(h.release_offsets) AS e(partition, next_offset)
             LEFT JOIN sessionwarden.sink_offsets s
                    ON s.topic = %s AND s.partition = e.partition::int
            WHERE greatest(coalesce(s.next_offset, 0),
                           coalesce((%s::jsonb ->> e.partition)::bigint, 0))
                  < e.next_offset::bigint)
    RETURNING 1)
SELECT (SELECT count(*) FROM sessionwarden.revoked_tenants WHERE release_offsets IS NOT NULL)
       - (SELECT count(*) FROM released)
"""

_NOTIFY = "SELECT count(pg_notify(%s, tag)) FROM unnest(%s::text[]) AS tag"

# The backends of revoked sessions (sessionwarden.cut_off(), migration 004): named for the
# session (application_name swt:/swc:<tag>), or inside a transaction that read for it (the
# shared advisory lock require_session() takes, which no SET can drop). A running statement of
# a transaction-bound backend is cancelled (a pooled connection serves other sessions next);
# everything else is terminated: a dedicated connection, and a backend idle in (or between
# statements of) the session's transaction, where a cancel does nothing and an open cursor
# still returns rows on FETCH. An unknown state (the sink's role cannot read other roles'
# activity without pg_read_all_stats) is terminated. With terminate_all every marked backend is
# terminated: the second pass, for a cancel that did not end the session's transaction (a
# savepoint, a cancel that arrived between statements). Each signal goes on its own: one the
# sink may not send (a superuser's backend) is counted in refused, and the others still go.
_CUT_OFF = "SELECT cancelled, terminated, refused FROM sessionwarden.cut_off(%s::text[], %s)"

# What the sink's role may do on the server: signal other roles' backends, read their state.
_POWERS = """
SELECT pg_has_role(current_user, 'pg_signal_backend', 'USAGE'),
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
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
        self.refused_signals = 0  # signals of the cut-off the server refused (a superuser's)

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

    def write(
        self,
        batch: Batch,
        seen: Mapping[int, int],
        ends: Mapping[int, int] | None = None,
        positions: Mapping[int, int] | None = None,
    ) -> int:
        """Upsert the rows and holds, advance the offsets from ``seen``, release the holds
        whose rows are all in, and notify, in one transaction; raises OffsetConflict (rolled
        back) when a stored offset is no longer ``seen``. ``ends``: the topic's end offsets
        taken after the batch was read, when it holds a complete tenant_revocation copy;
        ``positions``: this sink's consumer positions. Returns the holds still waiting for
        their release."""
        with self.conn.transaction():
            if batch.rows:
                rows = orjson.dumps([r._asdict() for r in batch.rows]).decode()
                self.conn.execute(_UPSERT, (self.topic, rows))
            for hold in batch.holds:
                if not hold.complete:
                    self.conn.execute(_HOLD, hold[:7])
                elif ends is not None:
                    release = orjson.dumps({str(p): o for p, o in sorted(ends.items())}).decode()
                    where = (hold.tenant, hold.source_partition, hold.revocation_id)
                    self.conn.execute(_RELEASE_AT, (release, *where))
            for partition, next_offset in sorted(batch.next_offsets.items()):
                cur = self.conn.execute(
                    _ADVANCE, (next_offset, self.topic, partition, seen[partition])
                )
                if cur.rowcount != 1:
                    raise OffsetConflict(f"{self.topic}[{partition}] moved under this sink")
            waiting = self._release(positions or {})
            if batch.rows:
                self.conn.execute(_NOTIFY, (NOTIFY_CHANNEL, batch.tags))
        return waiting

    def release(self, positions: Mapping[int, int]) -> int:
        """Release the holds whose rows are all stored (see ``_RELEASE``); returns how many
        still wait."""
        with self.conn.transaction():
            return self._release(positions)

    def _release(self, positions: Mapping[int, int]) -> int:
        own = orjson.dumps({str(p): o for p, o in positions.items()}).decode()
        row = self.conn.execute(_RELEASE, (self.topic, own)).fetchone()
        assert row is not None
        return int(row[0])

    def cut_off(self, tags: list[str], terminate_all: bool = False) -> tuple[int, int]:
        """Cancel / terminate the live backends of these sessions: (cancelled, terminated).
        ``terminate_all``: terminate every backend still marked with one of them (the second
        pass, a grace after the first, ends what a cancel left open). Backends the sink may not
        signal are skipped and counted in ``refused_signals``."""
        with self.conn.transaction():
            row = self.conn.execute(_CUT_OFF, (tags, terminate_all)).fetchone()
        assert row is not None
        cancelled, terminated, refused = (int(v) for v in row)
        if refused:
            self.refused_signals += refused
            log.warning(
                "backends of revoked sessions the sink may not signal were left running",
                extra={
                    "backends": refused,
                    "detail": "a superuser's backend, or the sink's role lacks"
                    " pg_signal_backend: see docs/DATABASE.md",
                },
            )
        return cancelled, terminated

    def repair_last_write(self) -> bool:
        """Forget a recorded revocation write whose transaction id is in this server's future (a
        database restored from a dump into another cluster): it would turn the guard's check
        of old snapshots off until overwritten. True if it was reset."""
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT setval('sessionwarden.last_revocation_write', 0, false) FROM"
                " pg_sequence_last_value('sessionwarden.last_revocation_write') AS last"
                " WHERE last >= pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
            ).fetchone()
        return row is not None

    def missing_powers(self) -> list[str]:
        """The predefined roles the cut-off needs that the sink's role lacks."""
        with self.conn.transaction():
            row = self.conn.execute(_POWERS).fetchone()
        assert row is not None
        names = ("pg_signal_backend", "pg_read_all_stats")
        return [name for name, has in zip(names, row, strict=True) if not has]

    def revoked_tags(self) -> list[str]:
        """The tags of every session in the revocation set (for the cut-off at the sink's
        start: a sink stopped between a commit and its cut-off must not leave those sessions'
        backends running)."""
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT DISTINCT sessionwarden.session_tag(tenant, session_id)"
                " FROM sessionwarden.revoked_sessions"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def bypasses(self) -> list[tuple[str, str, str, str]]:
        """What ``sessionwarden.bypasses()`` finds around the guard of every protected table:
        (table, kind, object, detail)."""
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT protected::text, kind, object, detail FROM sessionwarden.bypasses()"
                " ORDER BY 1, 2, 3"
            ).fetchall()
        return [(str(t), str(k), str(o), str(d)) for t, k, o, d in rows]

    def prune(self, now: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` rows past their keep_until (and every hold past its own);
        returns how many rows."""
        with self.conn.transaction():
            self.conn.execute(
                "DELETE FROM sessionwarden.revoked_tenants WHERE keep_until <= %s", (now,)
            )
            return self.conn.execute(_PRUNE, (now, limit)).rowcount
