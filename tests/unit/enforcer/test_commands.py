"""Operator commands: which sessions they end, what they emit, what they refuse (plain numbers)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from pydantic import TypeAdapter

from sessionwarden.contracts.commands import OperatorCommand
from sessionwarden.contracts.outputs import (
    OperatorCommandApplied,
    Revocation,
    SessionEnded,
    TenantRevocation,
)
from sessionwarden.enforcer.engine.commands import CommandOutcome, OperatorCommands
from sessionwarden.enforcer.engine.sessions import revocation_key, tenant_revocation_key
from tests.unit.enforcer.factories import T0, activity, at, login
from tests.unit.enforcer.harness import Harness

OPERATOR = "User:oncall"


def command(t: float, **fields: Any) -> OperatorCommand:
    doc: dict[str, Any] = {
        "command_id": uuid.uuid4(),
        "issued_at": at(t),
        "tenant": "acme",
        "scope": "user",
        "user_id": "u1",
        "operator": OPERATOR,
        "reason_admin": "account compromised",
    }
    doc.update(fields)
    return OperatorCommand(**{k: v for k, v in doc.items() if v is not None})


class CommandHarness(Harness):
    """The engine harness plus commands, each in a batch of its own (as the shell does)."""

    def __init__(self) -> None:
        super().__init__()
        self.commands = OperatorCommands(self.enforcer, frozenset({OPERATOR}))

    def command(
        self,
        cmd: OperatorCommand,
        received: float | None = None,
        limit: int | None = None,
        held: bool = False,
    ) -> CommandOutcome:
        r = T0 + (cmd.issued_at.timestamp() - T0 if received is None else received)
        self.enforcer.state.begin()
        outcome = self.commands.apply(cmd, r, r, limit, held)
        self._commit()
        return outcome

    def applied(self) -> list[dict[str, Any]]:
        return self.audits("operator_command_applied")


def started(h: CommandHarness, *sessions: tuple[str, str, str]) -> None:
    """Log in (session, user, tenant) at t = 1, 2, ..."""
    h.feed(
        *(login(i + 1, sid, user, tenant=tenant) for i, (sid, user, tenant) in enumerate(sessions))
    )


def test_a_user_command_ends_every_live_session_of_that_user_and_no_other() -> None:
    """The 3 a.m. case: one command ends all of a compromised user's sessions at once."""
    h = CommandHarness()
    started(
        h, ("a1", "u1", "acme"), ("a2", "u1", "acme"), ("b1", "u2", "acme"), ("c1", "u1", "other")
    )
    cmd = command(10)

    outcome = h.command(cmd)

    assert CommandOutcome("applied", 2) == outcome
    assert [("a1", "operator", 10.0), ("a2", "operator", 10.0)] == h.ended()
    assert {cmd.command_id} == {r["cause_event_id"] for r in h.revocations()}
    assert 2 == h.enforcer.state.live_sessions()


def test_a_session_command_ends_that_session_only() -> None:
    """The finest grain: the other sessions of the user stay."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"), ("a2", "u1", "acme"))

    outcome = h.command(command(10, scope="session", session_id="a2", user_id=None))

    assert (CommandOutcome("applied", 1), [("a2", "operator", 10.0)]) == (outcome, h.ended())


def test_a_session_command_naming_another_user_ends_nothing() -> None:
    """A session id with the wrong owner is not the session the operator meant."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"))

    outcome = h.command(command(10, scope="session", session_id="a1", user_id="u2"))

    assert (CommandOutcome("applied", 0), []) == (outcome, h.ended())


def test_a_tenant_command_ends_every_session_of_the_tenant_only() -> None:
    """--all-users: the tenant's sessions on this partition, no other tenant's."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"), ("b1", "u2", "acme"), ("c1", "u1", "other"))

    outcome = h.command(command(10, scope="all_users", user_id=None))

    assert CommandOutcome("applied", 2) == outcome
    assert ["a1", "b1"] == [sid for sid, _, _ in h.ended()]
    assert 1 == h.enforcer.state.live_sessions()


def test_the_audit_names_the_operator_and_reason_and_validates() -> None:
    """The audit keeps who ended the sessions and why, in the same batch as the revocations."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"))
    cmd = command(10)

    h.command(cmd)

    [applied] = [TypeAdapter(OperatorCommandApplied).validate_python(d) for d in h.applied()]
    assert (OPERATOR, "account compromised", 1, "user", "u1", cmd.command_id) == (
        applied.user_id,
        applied.reason_admin,
        applied.revoked,
        applied.scope,
        applied.target_user_id,
        applied.command_id,
    )
    [ended] = [TypeAdapter(SessionEnded).validate_python(d) for d in h.audits("session_ended")]
    assert "operator" == ended.reason
    [revocation] = [TypeAdapter(Revocation).validate_python(d) for d in h.revocations()]
    assert "operator" == revocation.reason


def test_an_unknown_user_or_tenant_revokes_nothing_and_the_audit_says_so() -> None:
    """The operator learns the command matched nothing, rather than nothing at all."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"))

    outcomes = [
        h.command(command(10, user_id="nobody")),
        h.command(command(11, tenant="no-such-tenant", scope="all_users", user_id=None)),
    ]

    assert [CommandOutcome("applied", 0)] * 2 == outcomes
    assert [0, 0] == [d["revoked"] for d in h.applied()]
    assert [] == h.revocations()


def test_repeating_a_command_changes_nothing() -> None:
    """A retried or replayed command must not emit again, nor end anything new."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"))
    cmd = command(10)
    h.command(cmd)
    before = (list(h.outputs), h.enforcer.state.live_sessions())

    again = h.command(cmd, received=12)

    assert CommandOutcome("duplicate") == again
    assert before == (h.outputs, h.enforcer.state.live_sessions())


def test_a_replay_after_a_restart_ends_no_session_that_began_after_the_command() -> None:
    """The duplicate filter is in memory; what keeps a replay harmless is that a command ends
    only sessions that began before it was received."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"))
    cmd = command(10)
    h.command(cmd)
    h.feed(login(20, "a2", "u1"))
    h.enforcer = h.restored()
    h.commands = OperatorCommands(h.enforcer, frozenset({OPERATOR}))
    h.outputs.clear()

    replay = h.command(cmd, received=10)

    assert (CommandOutcome("applied", 0), []) == (replay, h.revocations())
    assert 1 == h.enforcer.state.live_sessions()


def test_a_session_already_past_its_deadline_ends_at_its_deadline_not_by_the_operator() -> None:
    """The engine's rule everywhere: a session that had expired ends with its own reason."""
    h = CommandHarness()
    h.feed(login(0, "a1", "u1"), activity(50, "a1", "u1"))

    outcome = h.command(command(200))

    assert (CommandOutcome("applied", 0), [("a1", "idle_timeout", 150.0)]) == (
        outcome,
        h.ended(),
    )


def test_a_command_of_an_operator_not_allowed_is_refused_and_changes_nothing() -> None:
    """The commands topic is writable by operators only; the named operator must be listed too."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"))

    outcome = h.command(command(10, operator="User:intern"))

    assert "refused" == outcome.status
    assert outcome.refused is not None and "operator_not_allowed" == outcome.refused[0]
    assert ([], [], 1) == (h.revocations(), h.applied(), h.enforcer.state.live_sessions())


def test_a_command_issued_in_the_future_is_refused() -> None:
    """A command's time bounds what it ends: a future stamp must not reach later sessions."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"))

    outcome = h.command(command(1000), received=10)

    assert outcome.refused is not None and "future_timestamp" == outcome.refused[0]
    assert ([], 1) == (h.revocations(), h.enforcer.state.live_sessions())


def test_the_changelog_of_a_command_batch_restores_the_ended_sessions() -> None:
    """The state change commits with the revocations: a restore sees them ended."""
    h = CommandHarness()
    started(h, ("a1", "u1", "acme"), ("a2", "u1", "acme"))
    h.command(command(10))

    assert 0 == h.restored().state.live_sessions()


def test_a_large_command_ends_its_sessions_over_several_batches_each_audited() -> None:
    """However large the tenant, one transaction ends at most ``limit`` sessions; the audit
    has one record per batch, the last marked complete, and their sum is every session."""
    h = CommandHarness()
    started(h, *((f"a{i}", f"u{i}", "acme") for i in range(5)))
    cmd = command(10, scope="all_users", user_id=None)

    outcomes = [h.command(cmd, limit=2) for _ in range(3)]

    assert ["partial", "partial", "applied"] == [o.status for o in outcomes]
    assert [(2, False), (2, False), (1, True)] == [
        (d["revoked"], d["complete"]) for d in h.applied()
    ]
    assert 3 == len({d["event_id"] for d in h.applied()})
    assert (5, 0) == (len(h.revocations()), h.enforcer.state.live_sessions())


def tenant_records(h: CommandHarness) -> list[dict[str, Any]]:
    return [o.value for o in h.outputs if o.value["type"] == "tenant_revocation"]


def held_harness(sessions: int) -> tuple[CommandHarness, OperatorCommand]:
    """A tenant of ``sessions`` sessions (and one of another tenant), holding past 2."""
    h = CommandHarness()
    started(h, *((f"a{i}", f"u{i}", "acme") for i in range(sessions)), ("c1", "u0", "other"))
    h.commands = OperatorCommands(h.enforcer, frozenset({OPERATOR}), hold_over=2)
    return h, command(10, scope="all_users", user_id=None)


def test_a_large_tenant_command_commits_its_tenant_record_first_ending_nothing() -> None:
    """The mass revocation is binding in one small transaction, however large the tenant: the
    tenant record names the cut-off (the command's append time) and the partition."""
    h, cmd = held_harness(5)

    outcome = h.command(cmd, limit=2)

    assert CommandOutcome("held") == outcome
    assert ([], 6) == (h.revocations(), h.enforcer.state.live_sessions())
    (doc,) = tenant_records(h)
    record = TenantRevocation.model_validate(doc)
    assert ("acme", cmd.command_id, T0 + 10, 0, False) == (
        record.tenant,
        record.command_id,
        record.started_by.timestamp(),
        record.partition,
        record.complete,
    )
    (applied,) = h.applied()
    assert (0, False, True) == (applied["revoked"], applied["complete"], applied["held"])
    OperatorCommandApplied.model_validate(applied)


def test_a_held_command_ends_its_sessions_in_shares_then_completes_in_a_batch_of_its_own() -> None:
    """Each session ends once, by the operator; the complete tenant record follows every
    per-session revocation in a later transaction (subscribers rely on that order)."""
    h, cmd = held_harness(5)
    h.command(cmd, limit=2)
    batches: list[int] = []

    outcomes = []
    for _ in range(4):
        before = len(h.outputs)
        outcomes.append(h.command(cmd, limit=2, held=True))
        batches.append(before)

    assert [("partial", 2), ("partial", 2), ("partial", 1), ("applied", 0)] == [
        (o.status, o.revoked) for o in outcomes
    ]
    assert sorted(f"a{i}" for i in range(5)) == sorted(sid for sid, _, _ in h.ended())
    assert {"operator"} == {reason for _, reason, _ in h.ended()}
    assert 1 == h.enforcer.state.live_sessions()  # the other tenant's
    last = h.outputs[batches[-1] :]
    assert [("tenant_revocation", True)] == [
        (o.value["type"], o.value["complete"]) for o in last if o.topic == "revocations"
    ]
    assert [False, True] == [d["complete"] for d in tenant_records(h)]
    assert 1 == len({d["revocation_id"] for d in tenant_records(h)})
    applied = h.applied()
    assert (5, True) == (sum(d["revoked"] for d in applied), applied[-1]["complete"])
    assert len(applied) == len({d["event_id"] for d in applied})


def test_a_held_command_does_not_touch_a_session_that_began_after_it() -> None:
    """A login appended after the command is a new session: refused downstream for the short
    while the tenant record holds, never ended by the command."""
    h, cmd = held_harness(3)
    h.command(cmd, limit=2)
    h.feed(login(20, "late", "u9", tenant="acme"))

    while h.command(cmd, limit=2, held=True).status != "applied":
        pass

    assert "late" not in {sid for sid, _, _ in h.ended()}
    assert 2 == h.enforcer.state.live_sessions()


def test_a_held_command_replayed_after_a_restart_ends_each_session_exactly_once() -> None:
    """A crash after the hold and one share: the command is read again (its offset commits
    with the last share), holds again under the same record id, and ends only the rest."""
    h, cmd = held_harness(5)
    h.command(cmd, limit=2)
    h.command(cmd, limit=2, held=True)
    first_id = tenant_records(h)[0]["revocation_id"]
    h.enforcer = h.restored()
    h.commands = OperatorCommands(h.enforcer, frozenset({OPERATOR}), hold_over=2)

    assert CommandOutcome("held") == h.command(cmd, limit=2)
    while h.command(cmd, limit=2, held=True).status != "applied":
        pass

    ended = [d["session_id"] for d in h.audits("session_ended")]
    assert sorted(f"a{i}" for i in range(5)) == sorted(ended)
    assert {first_id} == {d["revocation_id"] for d in tenant_records(h)}
    assert 1 == h.enforcer.state.live_sessions()


def test_a_tenant_command_within_the_hold_threshold_ends_everything_in_its_own_batch() -> None:
    """A small tenant needs no tenant record: its revocations commit with the command."""
    h, cmd = held_harness(2)

    assert CommandOutcome("applied", 2) == h.command(cmd, limit=10)
    assert [] == tenant_records(h)


def test_a_large_share_logs_a_hundred_session_lines_and_one_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A line per session would cost as much as ending it; the audit keeps every record."""
    h = CommandHarness()
    h.feed(*(login(1, f"a{i}", f"u{i}", tenant="acme") for i in range(150)))
    h.commands = OperatorCommands(h.enforcer, frozenset({OPERATOR}), hold_over=2)
    cmd = command(10, scope="all_users", user_id=None)
    h.command(cmd, limit=1000)
    caplog.set_level(logging.INFO, logger="sessionwarden.enforcer.outputs")

    h.command(cmd, limit=1000, held=True)

    lines = [r for r in caplog.records if r.name == "sessionwarden.enforcer.outputs"]
    counted = [r for r in lines if r.getMessage() == "sessions ended by operator command"]
    assert (101, 1, 150) == (len(lines), len(counted), len(h.audits("session_ended")))
    assert 150 == counted[0].__dict__["sessions"]


def test_each_partitions_tenant_record_has_a_key_of_its_own_never_a_sessions() -> None:
    """Compaction keeps one record per key: the copies of two partitions must not replace each
    other, and no session id (not even "0") can name the tenant record's key."""
    h, cmd = held_harness(5)
    h.command(cmd, limit=2)

    (key,) = [o.key for o in h.outputs if o.value["type"] == "tenant_revocation"]

    assert '["acme",0]' == key
    assert key not in (tenant_revocation_key("acme", 1), revocation_key("acme", "0"))
