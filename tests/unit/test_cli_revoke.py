"""`sessionwarden revoke` without a broker: the command it builds and what it reports."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sessionwarden.cli.main import main
from sessionwarden.cli.revoke import (
    INVALID,
    NO_ANSWER,
    NOTHING,
    REVOKED,
    Answers,
    build_command,
    default_operator,
    report,
)
from sessionwarden.config.settings import load_settings

CID = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def applied(partition: int, revoked: int, command_id: uuid.UUID = CID) -> dict[str, object]:
    return {
        "type": "operator_command_applied",
        "command_id": str(command_id),
        "partition": partition,
        "revoked": revoked,
    }


def test_the_arguments_choose_the_scope() -> None:
    """--session, --user and --all-users map onto the command's scope and targets."""
    scopes = [
        build_command("acme", "s1", None, False, "why", "User:op", NOW, CID).scope,
        build_command("acme", "s1", "u1", False, "why", "User:op", NOW, CID).scope,
        build_command("acme", None, "u1", False, "why", "User:op", NOW, CID).scope,
        build_command("acme", None, None, True, "why", "User:op", NOW, CID).scope,
    ]
    assert ["session", "session", "user", "all_users"] == scopes


def test_a_blank_reason_is_refused_before_anything_is_sent() -> None:
    """The enforcer would dead-letter it; the operator learns at once instead."""
    with pytest.raises(ValidationError):
        build_command("acme", None, "u1", False, "  ", "User:op", NOW, CID)


def test_the_answers_of_every_partition_are_summed_and_others_ignored() -> None:
    """A tenant-wide command is answered once per partition; other commands' answers and
    other records on the audit trail do not count."""
    answers = Answers(CID, frozenset({0, 1, 2}))
    answers.take([applied(0, 3), applied(1, 0), applied(2, 9, uuid.uuid4()), {"type": "x"}])
    assert (False, 3) == (answers.complete, answers.total)

    answers.take([applied(2, 4)])

    assert (True, 7) == (answers.complete, answers.total)


def test_a_large_commands_shares_are_summed_until_the_last_one() -> None:
    """A command over many sessions is answered once per batch on a partition; only the
    record marked complete ends the wait."""
    answers = Answers(CID, frozenset({0}))
    answers.take([{**applied(0, 3333), "complete": False}, {**applied(0, 3333), "complete": False}])
    assert (False, 6666) == (answers.complete, answers.total)

    answers.take([applied(0, 1)])

    assert (True, 6667) == (answers.complete, answers.total)


def test_the_report_and_exit_status_say_what_happened() -> None:
    """0 revoked, 1 matched nothing, 3 no answer in time."""
    cmd = build_command("acme", None, "u1", False, "why", "User:op", NOW, CID)
    statuses, lines = [], []
    for answered in ({0: 2}, {0: 0}, {}):
        out, err = io.StringIO(), io.StringIO()
        answers = Answers(CID, frozenset({0}))
        answers.take([applied(p, n) for p, n in answered.items()])
        statuses.append(report(cmd, answers, out, err))
        lines.append((out.getvalue() + err.getvalue()).split(";")[0])

    assert [REVOKED, NOTHING, NO_ANSWER] == statuses
    assert [
        "revoked 2 sessions of user u1 of tenant acme",
        "nothing revoked: no live session for user u1 of tenant acme (unknown tenant, user or "
        "session, or already ended)",
        "no answer from partition(s) 0 of the enforcer in time (revoked so far: 0)",
    ] == lines


def test_the_operator_defaults_to_the_kafka_login() -> None:
    """The command names the principal that writes it, when the settings have a login."""
    assert "User:sessionwarden-operator" == default_operator(load_settings())


@pytest.mark.parametrize(
    "argv",
    [
        ["--tenant", "acme", "--reason-admin", "why"],
        ["--tenant", "acme", "--all-users", "--user", "u1", "--reason-admin", "why"],
        ["--tenant", "acme", "--user", "u1", "--reason-admin", ""],
    ],
)
def test_incomplete_or_contradictory_arguments_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing is sent for a command that names no target, two scopes or no reason."""
    assert INVALID == main(["revoke", *argv])
    assert "sessionwarden revoke:" in capsys.readouterr().err


def test_a_held_command_is_committed_once_every_partition_held_and_says_both_times() -> None:
    """The operator learns when the revocation bit (every partition held or done) apart from
    when the last session's own record committed."""
    cmd = build_command("acme", None, None, True, "why", "User:op", NOW, CID)
    answers = Answers(CID, frozenset({0, 1}))
    answers.take([{**applied(0, 0), "complete": False, "held": True}, applied(1, 5)])
    binding = answers.binding
    answers.take([{**applied(0, 7), "complete": False}, applied(0, 0)])
    answers.binding_seconds, answers.seconds = 0.4, 9.5
    out = io.StringIO()

    status = report(cmd, answers, out, io.StringIO())

    assert (True, REVOKED, 12) == (binding, status, answers.total)
    assert out.getvalue().startswith(
        "revoked 12 sessions of every user of tenant acme; command "
        f"{CID}, committed in 0.40 s (tenant-wide; every session's own record by 9.50 s)"
    )
