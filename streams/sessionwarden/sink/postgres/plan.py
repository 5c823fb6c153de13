"""The sink's decisions, pure: which rows a batch of revocation records writes, which offsets it
commits, which backends it cuts off, and when to prune. No Kafka, no PostgreSQL (time is an
argument)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sessionwarden.contracts.codec import DecodeError, decode_revocation_record
from sessionwarden.contracts.outputs import Revocation, TenantRevocation
from sessionwarden.contracts.postgres import session_tag


class CutOffSchedule:
    """The second pass of the cut-off: the sessions of a batch, cut off at ``now``, are looked
    at again ``grace_s`` later (a monotonic clock), and every backend still marked with one of
    them is terminated. A cancel ends the statement and, normally, the session's transaction
    (its mark goes with it); a savepoint keeps the transaction and its cursors alive, a cancel
    that lands between two statements does nothing, and a statement that marked itself just
    after the first pass was not seen by it: the second pass ends all three."""

    def __init__(self, grace_s: float) -> None:
        if not grace_s > 0:
            raise ValueError(f"grace_s must be positive, got {grace_s!r}")
        self.grace_s = grace_s
        self._pending: list[tuple[float, list[str]]] = []

    def add(self, tags: list[str], now: float) -> None:
        if tags:
            self._pending.append((now + self.grace_s, list(tags)))

    def due(self, now: float) -> list[str]:
        """The tags whose second pass is due (each once), oldest first."""
        ready = [tags for at, tags in self._pending if at <= now]
        self._pending = [(at, tags) for at, tags in self._pending if at > now]
        return list(dict.fromkeys(t for tags in ready for t in tags))

    def __len__(self) -> int:
        return len(self._pending)


class RawRecord(NamedTuple):
    """One consumed record of the revocation topic; the key is not read (its format may change)."""

    partition: int
    offset: int
    value: bytes | None


class RevokedRow(NamedTuple):
    """One row of sessionwarden.revoked_sessions, as the batch upserts it."""

    tenant: str
    session_id: str
    user_id: str
    reason: str
    revocation_id: str
    effective_at: datetime
    keep_until: datetime
    records: int
    source_partition: int
    source_offset: int


class HoldRow(NamedTuple):
    """One copy of a tenant_revocation, as the batch writes it to sessionwarden.revoked_tenants:
    the first copy holds the tenant, the complete one sets the hold's release offsets."""

    tenant: str
    source_partition: int
    revocation_id: str
    command_id: str
    started_by: datetime
    effective_at: datetime
    keep_until: datetime
    complete: bool


@dataclass
class Batch:
    """What one database transaction writes for a run of consumed records."""

    rows: list[RevokedRow] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    """Per partition: the offset after the last record of the batch (the next to read)."""
    expired: int = 0
    """Revocations already past keep_until: nothing to keep, only their offsets advance."""
    ignored: int = 0
    """Records that revoke nothing (revalidations), or name a session PostgreSQL cannot hold
    (a NUL character: no transaction can be bound to it either)."""
    undecodable: list[tuple[int, int, DecodeError]] = field(default_factory=list)
    """(partition, offset, error) of records that are no revocation record at all."""
    holds: list[HoldRow] = field(default_factory=list)
    """The batch's tenant_revocation copies, in the order read (the first copy of a hold
    before its complete one)."""

    @property
    def releasing(self) -> bool:
        """A complete copy is in the batch: its hold's release offsets must be taken."""
        return any(h.complete for h in self.holds)

    @property
    def tags(self) -> list[str]:
        """The sessions of the batch, as the backends bound to them name themselves."""
        return [session_tag(r.tenant, r.session_id) for r in self.rows]


def plan_batch(records: Iterable[RawRecord], now: datetime, keep_for: timedelta) -> Batch:
    """Decode a run of records into one batch: one row per (tenant, session), the latest record
    winning, its lifetime never shortened, and ``records`` counting every revocation of it."""
    batch = Batch()
    by_session: dict[tuple[str, str], RevokedRow] = {}
    for raw in records:
        prev = batch.next_offsets.get(raw.partition, -1)
        batch.next_offsets[raw.partition] = max(prev, raw.offset + 1)
        try:
            record = decode_revocation_record(raw.value)
        except DecodeError as exc:
            batch.undecodable.append((raw.partition, raw.offset, exc))
            continue
        if isinstance(record, TenantRevocation):
            hold = _hold_row(record, now, keep_for)
            if hold is None:
                batch.expired += 1
            else:
                batch.holds.append(hold)
            continue
        if not isinstance(record, Revocation) or "\x00" in (
            record.tenant + record.session_id + record.user_id
        ):
            batch.ignored += 1
            continue
        keep_until = record.effective_at + keep_for
        if keep_until <= now:
            batch.expired += 1
            continue
        key = (record.tenant, record.session_id)
        old = by_session.get(key)
        count = 1
        if old is not None:
            keep_until = max(keep_until, old.keep_until)
            count += old.records
        by_session[key] = RevokedRow(
            record.tenant,
            record.session_id,
            record.user_id,
            record.reason,
            str(record.revocation_id),
            record.effective_at,
            keep_until,
            count,
            raw.partition,
            raw.offset,
        )
    batch.rows = list(by_session.values())
    return batch


def _hold_row(record: TenantRevocation, now: datetime, keep_for: timedelta) -> HoldRow | None:
    """The row of a tenant_revocation copy, or None when it has expired (or names a tenant
    PostgreSQL cannot hold: no transaction can be bound to it either)."""
    keep_until = record.effective_at + keep_for
    if keep_until <= now or "\x00" in record.tenant:
        return None
    return HoldRow(
        record.tenant,
        record.partition,
        str(record.revocation_id),
        str(record.command_id),
        record.started_by,
        record.effective_at,
        keep_until,
        record.complete,
    )


class PruneSchedule:
    """Prune expired rows every ``interval_s`` seconds of a monotonic clock; the first prune
    runs at once, so a sink restarted after a long stop sheds its stale rows first."""

    def __init__(self, interval_s: float) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.interval_s = interval_s
        self._next: float | None = None

    def due(self, now: float) -> bool:
        return self._next is None or now >= self._next

    def done(self, now: float) -> None:
        self._next = now + self.interval_s


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
