"""Operator commands consumed from the sessionwarden.commands topic.

An operator ends sessions on purpose: one session, every session of one user, or every session
of one tenant. The enforcer applies a command in its own transaction like an auth event. Its
topic is keyed like auth.events (by ``user_id``) so that a user's command reaches the partition
that holds the user's sessions; a command without a user is written once to every partition,
each copy with the same ``command_id``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import StringConstraints, model_validator

from sessionwarden.contracts.base import (
    TOKEN_PATTERN,
    InputIdentifier,
    InputSessionId,
    UtcDatetime,
    WireModel,
)

__all__ = [
    "MAX_REASON_ADMIN_CHARS",
    "CommandScope",
    "OperatorCommand",
    "ReasonAdmin",
]

MAX_REASON_ADMIN_CHARS = 512

ReasonAdmin = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_REASON_ADMIN_CHARS, pattern=TOKEN_PATTERN)
]
"""Why an operator ended sessions, kept by the audit: not blank, no control characters."""

CommandScope = Literal["session", "user", "all_users"]
"""What a command ends: one session, a user's sessions, or every session of the tenant."""


class OperatorCommand(WireModel):
    """End sessions now, on an operator's word: ``scope`` says which, ``reason_admin`` why.

    ``session`` names ``session_id`` (and may name its ``user_id``), ``user`` names
    ``user_id`` only, ``all_users`` names neither. A command reached twice (the same
    ``command_id``) changes nothing the second time: it ends only sessions that began before
    the enforcer received it, and those are ended by then.
    """

    type: Literal["revoke_sessions"] = "revoke_sessions"
    command_id: UUID
    issued_at: UtcDatetime
    tenant: InputIdentifier
    scope: CommandScope
    session_id: InputSessionId | None = None
    user_id: InputIdentifier | None = None
    operator: InputIdentifier
    """The principal that issued the command; the enforcer applies it only when this is one of
    its allowed operators (``enforcer.operators``)."""
    reason_admin: ReasonAdmin

    @model_validator(mode="after")
    def _targets_match_scope(self) -> Self:
        if self.scope == "session" and self.session_id is None:
            raise ValueError("a 'session' command names its session_id")
        if self.scope == "user" and (self.user_id is None or self.session_id is not None):
            raise ValueError("a 'user' command names its user_id and no session_id")
        if self.scope == "all_users" and (self.user_id is not None or self.session_id is not None):
            raise ValueError("an 'all_users' command names neither user_id nor session_id")
        return self
