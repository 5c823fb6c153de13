"""Operator commands for one input partition: pure, no Kafka, time passed in.

``OperatorCommands.apply(command, now, received)`` ends the sessions an operator named (one
session, a user's, or every session of the tenant that this partition holds) through the
partition's enforcer, so the revocations, their audit records, the ``operator_command_applied``
record and the state change go out in the batch, and so the transaction, of the command.

Which sessions: those live when the command was appended (login time at or before its receive
time ``r``). A session that began later is not the one the operator saw, and a command read
again (a replay, a second copy) therefore finds nothing left to end: repeating a command
changes nothing, even after a restart has emptied the in-memory duplicate filter. A session
whose own deadline passed before the command's effective time ``e = min(issued_at, r)`` ends
at that deadline, with its own reason, as everywhere else in the engine.

A command that names many sessions ends at most ``limit`` of them per call (per batch): the
shell calls again in its next batches until one call ends the rest. Each call's sessions, and
an ``operator_command_applied`` record saying how many it ended and whether it was the last
(``complete``), commit in that batch's transaction; a transaction never grows past what the
producer and the transaction timeout allow, however large the tenant.

Refused, changing nothing (the shell dead-letters the record with the returned reason): a
command of an operator not in the allowed set, and one issued further in the future than the
policy's clock skew tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sessionwarden.contracts.commands import OperatorCommand
from sessionwarden.enforcer.engine import records
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.sessions import Session

__all__ = ["CommandOutcome", "OperatorCommands"]

OPERATOR_REASON = "operator"


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What one command did on this partition. ``refused`` carries the dead-letter reason and
    detail; then nothing changed."""

    status: Literal["applied", "partial", "duplicate", "refused"]
    revoked: int = 0
    refused: tuple[Literal["operator_not_allowed", "future_timestamp"], str] | None = None

    @property
    def kind(self) -> str:
        """What the metrics count it as, like an auth event's outcome."""
        return self.status


class OperatorCommands:
    """Applies operator commands to the partition ``enforcer`` decides for."""

    def __init__(self, enforcer: PartitionEnforcer, operators: frozenset[str]) -> None:
        self.enforcer = enforcer
        self.operators = operators

    def apply(
        self, cmd: OperatorCommand, now: float, received: float, limit: int | None = None
    ) -> CommandOutcome:
        """Apply one validated command read at ``now`` whose record was appended at
        ``received``, ending at most ``limit`` sessions (``partial``: call again in the next
        batch); the caller has begun the state's batch."""
        if cmd.operator not in self.operators:
            detail = "operator is not one of the enforcer's allowed operators (enforcer.operators)"
            return CommandOutcome("refused", refused=("operator_not_allowed", detail))
        enforcer = self.enforcer
        skew = enforcer.policy.clock_skew_tolerance
        t = cmd.issued_at.timestamp()
        if t > received + skew:
            detail = (
                f"issued_at is {t - received:.1f}s ahead of the time it was received "
                f"(tolerance {skew:g}s)"
            )
            return CommandOutcome("refused", refused=("future_timestamp", detail))
        state = enforcer.state
        enforcer.now = now
        e = min(t, received)
        targets = self._targets(cmd, received)
        complete = limit is None or len(targets) <= limit
        if complete and not targets and not state.first_seen(cmd.tenant, cmd.command_id.int):
            return CommandOutcome("duplicate")  # read again after it was applied: no record
        revoked = 0
        for sess in targets if complete else targets[:limit]:
            deadline, reason = sess.deadline()
            if deadline <= e:
                enforcer.end_session(sess, reason, deadline)
            else:
                enforcer.end_session(sess, OPERATOR_REASON, max(e, sess.login_at), cmd.command_id)
                revoked += 1
        if complete and targets:
            state.first_seen(cmd.tenant, cmd.command_id.int)
        first = targets[0].key if targets else None
        doc = records.operator_command_applied(cmd, e, state.partition, revoked, complete, first)
        state.emit("audit", cmd.operator, doc)
        return CommandOutcome("applied" if complete else "partial", revoked)

    def _targets(self, cmd: OperatorCommand, received: float) -> list[Session]:
        """The live sessions the command names, in a fixed order, that began by ``received``."""
        state = self.enforcer.state
        tenant = cmd.tenant
        found: list[Session] = []
        if cmd.scope == "session":
            assert cmd.session_id is not None
            sess = state.sessions.get((tenant, cmd.session_id))
            if isinstance(sess, Session) and cmd.user_id in (None, sess.user_id):
                found.append(sess)
        elif cmd.scope == "user":
            assert cmd.user_id is not None
            found.extend(state.live_sessions_of((tenant, cmd.user_id)))
        else:
            found.extend(
                sess
                for (t, _), sess in state.sessions.items()
                if t == tenant and isinstance(sess, Session)
            )
        return [sess for sess in found if sess.login_at <= received]
