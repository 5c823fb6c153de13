"""A read-only view of live sessions, folded from the enforcer's changelog records.

No second decoder: the records go through the enforcer's own restore
(``PartitionState.restore`` then ``decode_restored``: the last record per key wins, a
tombstone deletes, keys of the older ``s|<id>`` form are read), one state per changelog
partition, and each live ``Session`` it rebuilds becomes a :class:`LiveSession` whose next end
is the enforcer's own ``Session.deadline()``. Pure code: records in, sessions out; the Kafka
reading is ``sessionwarden.enforcer.live_reader``.

Only the records of the tenant asked for are kept (keys name their tenant; a key of the older
form is kept until its value names one), so reading a large changelog costs the memory of
one tenant's sessions, not of all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionwarden.enforcer.engine.partition import PartitionState
from sessionwarden.enforcer.engine.sessions import SESSION, Ended, Session, parse_changelog_key
from sessionwarden.policy import Policy, default_policy

LEGACY_SESSION_PREFIX = "s|"


@dataclass(frozen=True)
class LiveSession:
    """One live session as the enforcer's committed state holds it (event-time seconds)."""

    tenant: str
    session_id: str
    user_id: str
    user_type: str
    risk_profile: str
    started_at: float  # the login's time
    last_activity: float
    idle_deadline: float  # last activity + idle timeout
    absolute_deadline: float
    ends_at: float  # the earlier deadline
    ends_by: str  # what ends it next: "idle_timeout" or "absolute_timeout"
    partition: int  # of the changelog (and of the enforcer's input)

    @classmethod
    def of(cls, sess: Session, partition: int) -> LiveSession:
        ends_at, ends_by = sess.deadline()
        return cls(
            tenant=sess.tenant,
            session_id=sess.session_id,
            user_id=sess.user_id,
            user_type=sess.user_type,
            risk_profile=sess.risk_profile,
            started_at=sess.login_at,
            last_activity=sess.last_activity,
            idle_deadline=sess.last_activity + sess.idle_timeout,
            absolute_deadline=sess.absolute_deadline,
            ends_at=ends_at,
            ends_by=ends_by,
            partition=partition,
        )


def next_end(record: Session | Ended) -> tuple[float, str] | None:
    """When and why a session record ends next: its earlier deadline, or None once ended."""
    return record.deadline() if isinstance(record, Session) else None


@dataclass(frozen=True)
class Listing:
    """What a view found for its tenant (and user)."""

    sessions: list[LiveSession]  # live, oldest login first
    ended: int  # ended sessions still remembered (logout, revocation, timeout)
    unreadable: int  # records that did not decode (skipped)


class LiveView:
    """Live sessions of one tenant, optionally of one user, from changelog records given in
    each partition's order (read_committed)."""

    def __init__(self, tenant: str, user_id: str | None = None, policy: Policy | None = None):
        self.tenant = tenant
        self.user_id = user_id
        self._policy = policy if policy is not None else default_policy()  # unused by restore
        self._states: dict[int, PartitionState] = {}
        self.records = 0
        self._unreadable = 0

    def add(self, partition: int, raw_key: str, value: bytes | None) -> None:
        """Take one changelog record; records of other tenants and user records are dropped."""
        self.records += 1
        if raw_key.startswith("["):
            try:
                parsed = parse_changelog_key(raw_key)
            except ValueError:  # orjson's decode error is one
                self._unreadable += 1
                return
            if parsed is None or parsed[0] != SESSION or parsed[1][0] != self.tenant:
                return
        elif not raw_key.startswith(LEGACY_SESSION_PREFIX):
            return
        state = self._states.get(partition)
        if state is None:
            self._states[partition] = state = PartitionState(self._policy, partition)
        if not raw_key.startswith("["):  # decoded at once, after those kept before it
            self._decode(state)
        try:
            state.restore(raw_key, value)
        except (ValueError, KeyError, IndexError, TypeError):
            self._unreadable += 1

    def listing(self) -> Listing:
        """Decode what was added and list the live sessions, oldest login first."""
        live: list[LiveSession] = []
        ended = 0
        for partition, state in sorted(self._states.items()):
            self._decode(state)
            for (tenant, _), record in state.sessions.items():
                if tenant != self.tenant:  # an older-form key of another tenant
                    continue
                if self.user_id is not None and record.user_id != self.user_id:
                    continue
                if isinstance(record, Session):
                    live.append(LiveSession.of(record, partition))
                else:
                    ended += 1
        live.sort(key=lambda s: (s.started_at, s.session_id))
        return Listing(live, ended, self._unreadable)

    def _decode(self, state: PartitionState) -> None:
        """Decode every kept record; one that does not decode is counted and skipped (the
        restore takes each record off its queue before decoding it, so it goes on after)."""
        while True:
            try:
                if state.decode_restored():
                    return
            except (ValueError, KeyError, IndexError, TypeError):
                self._unreadable += 1
