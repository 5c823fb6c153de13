"""`sessionwarden revoke`: an operator ends a session, a user's sessions or a tenant's now.

The command goes to the commands topic (idempotent producer, acks=all); the enforcer applies it
in its own transaction and answers with one ``operator_command_applied`` audit record per
partition it reached. A tenant-wide command too large for one transaction answers first with a
record saying its tenant revocation committed (``held``: from then on every session it names
is refused), then with its shares. A command that names a user is keyed by it, like the user's
auth events, and reaches the partition that holds the user's sessions; one that names no user
(a session alone, or ``--all-users``) is written once to every partition, each copy with the
same command id. The command waits (``--timeout``) for every answer and prints how many
sessions were revoked, when the revocation committed (a held one at once, on a line of its
own), and, for a held one, when the last session's own record did.

Exit status: 0 sessions were revoked; 1 the command applied and matched nothing (unknown
tenant, user or session, or a repeat of a command already applied); 2 bad arguments or
settings; 3 not every partition answered in time (the enforcer is down or behind, or
refused the command: its dead letters say why).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from pydantic import ValidationError

from sessionwarden.cli.options import Subcommands, load, positive
from sessionwarden.contracts.commands import OperatorCommand
from sessionwarden.contracts.validation import error_lines
from sessionwarden.errors import SessionwardenError
from sessionwarden.kafka.security import KafkaSecurity, client_config

if TYPE_CHECKING:
    from sessionwarden.config.settings import Settings

EXTRA = None

REVOKED, NOTHING, INVALID, NO_ANSWER = 0, 1, 2, 3
DEFAULT_OPERATOR = "User:sessionwarden-operator"


class CommandNotSent(SessionwardenError):
    """The broker did not take the command."""


def build_command(
    tenant: str,
    session_id: str | None,
    user_id: str | None,
    all_users: bool,
    reason_admin: str,
    operator: str,
    now: datetime | None = None,
    command_id: uuid.UUID | None = None,
) -> OperatorCommand:
    """The command the arguments describe; raises ValidationError for bad input."""
    scope = "session" if session_id is not None else "all_users" if all_users else "user"
    return OperatorCommand(
        command_id=command_id or uuid.uuid4(),
        issued_at=now or datetime.now(UTC),
        tenant=tenant,
        scope=scope,
        session_id=session_id,
        user_id=user_id,
        operator=operator,
        reason_admin=reason_admin,
    )


def default_operator(settings: Settings) -> str:
    """The Kafka login the command is written as (``User:<name>``), else the default operator
    principal: the name the enforcer checks against its allowed operators."""
    name = KafkaSecurity.from_settings(settings.kafka).username
    return f"User:{name}" if name else DEFAULT_OPERATOR


@dataclass
class Answers:
    """The enforcer's answers to one command: per partition it was written to, one record, or
    several for a large command (each batch's share; the last says ``complete``)."""

    command_id: uuid.UUID
    partitions: frozenset[int]
    revoked: dict[int, int] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    seconds: float | None = None
    """From writing the command to reading the last answer (set by the caller)."""
    binding_seconds: float | None = None
    """From writing the command to reading the answer that made it committed on every
    partition: held, or done (set by the caller)."""

    def take(self, records: Iterable[dict[str, object]]) -> None:
        for doc in records:
            if doc.get("type") != "operator_command_applied":
                continue
            if doc.get("command_id") != str(self.command_id):
                continue
            partition = doc.get("partition")
            if isinstance(partition, int) and partition in self.partitions:
                revoked = doc.get("revoked")
                share = revoked if isinstance(revoked, int) else 0
                self.revoked[partition] = self.revoked.get(partition, 0) + share
                if doc.get("complete", True) is not False:
                    self.done.add(partition)
                if doc.get("held") is True:
                    self.held.add(partition)

    @property
    def complete(self) -> bool:
        return self.done >= self.partitions

    @property
    def binding(self) -> bool:
        """Every partition committed the revocation: its sessions all ended, or held."""
        return (self.done | self.held) >= self.partitions

    @property
    def total(self) -> int:
        return sum(self.revoked.values())


def target_text(cmd: OperatorCommand) -> str:
    if cmd.scope == "session":
        return f"session {cmd.session_id} of tenant {cmd.tenant}"
    if cmd.scope == "user":
        return f"user {cmd.user_id} of tenant {cmd.tenant}"
    return f"every user of tenant {cmd.tenant}"


def report(cmd: OperatorCommand, answers: Answers, out: TextIO, err: TextIO) -> int:
    """Print the outcome; returns the exit status."""
    if not answers.complete:
        missing = sorted(answers.partitions - answers.done)
        held = ""
        if answers.binding and answers.binding_seconds is not None:
            held = (
                f"the revocation committed in {answers.binding_seconds:.2f} s (every session "
                "it names is refused), but "
            )
        err.write(
            f"{held}no answer from partition(s) {', '.join(map(str, missing))} of the "
            f"enforcer in time (revoked so far: {answers.total}); it may be down or behind, or "
            f"it refused the command (see the dead letters). Command {cmd.command_id}: "
            "repeating it is safe\n"
        )
        return NO_ANSWER
    if answers.total == 0:
        out.write(
            f"nothing revoked: no live session for {target_text(cmd)} "
            f"(unknown tenant, user or session, or already ended); command {cmd.command_id}\n"
        )
        return NOTHING
    plural = "" if answers.total == 1 else "s"
    binding = answers.binding_seconds if answers.binding_seconds is not None else answers.seconds
    took = "" if binding is None else f" in {binding:.2f} s"
    each = ""
    if answers.held and answers.seconds is not None:
        each = f" (tenant-wide; every session's own record by {answers.seconds:.2f} s)"
    out.write(
        f"revoked {answers.total} session{plural} of {target_text(cmd)}; "
        f"command {cmd.command_id}, committed{took}{each}\n"
    )
    return REVOKED


def send_and_wait(
    settings: Settings, cmd: OperatorCommand, timeout: float, out: TextIO, err: TextIO
) -> int:
    """Write the command, then read the audit trail for the answers until ``timeout``."""
    import orjson
    from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

    from sessionwarden.contracts.codec import encode
    from sessionwarden.kafka.producing import produce_waiting

    client = client_config(settings.kafka)
    topic, audit = settings.topics.commands, settings.topics.audit
    producer = Producer(
        {
            **client,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",  # the publisher's: keys land where events do
        }
    )
    reader = Consumer(
        {
            **client,
            "group.id": f"sessionwarden-revoke-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
        }
    )
    try:
        md = producer.list_topics(timeout=timeout)
        for name in (topic, audit):
            if name not in md.topics or md.topics[name].error is not None:
                raise CommandNotSent(f"topic {name} does not exist (sessionwarden topics create)")
        # Answers are read from the audit trail's end as it is now: none can be older.
        start = []
        for p in md.topics[audit].partitions:
            _, high = reader.get_watermark_offsets(TopicPartition(audit, p), timeout=timeout)
            start.append(TopicPartition(audit, p, high))
        reader.assign(start)
        delivered: dict[int, int] = {}
        failed: list[str] = []

        def on_delivery(error: KafkaError | None, msg: Message) -> None:
            if error is not None:
                failed.append(str(error))
            else:
                delivered[msg.partition()] = msg.offset()

        value = encode(cmd)
        written = time.monotonic()
        if cmd.user_id is not None:
            produce_waiting(producer, topic, value, cmd.user_id.encode(), on_delivery=on_delivery)
        else:
            for p in sorted(md.topics[topic].partitions):
                produce_waiting(producer, topic, value, None, p, on_delivery=on_delivery)
        if producer.flush(timeout) or failed:
            raise CommandNotSent(f"the command was not written: {'; '.join(failed) or 'timeout'}")
        answers = Answers(cmd.command_id, frozenset(delivered))
        deadline = time.monotonic() + timeout
        while not answers.complete and time.monotonic() < deadline:
            for msg in reader.consume(500, 0.2):
                answer = msg.value() if msg.error() is None else None
                # A mass revocation puts one session_ended per session on the trail: only the
                # answers are parsed.
                if answer and b'"operator_command_applied"' in answer:
                    try:
                        doc = orjson.loads(answer)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(doc, dict):
                        answers.take([doc])
            if answers.binding_seconds is None and answers.binding:
                answers.binding_seconds = time.monotonic() - written
                if not answers.complete:  # held: say so now, the shares take a while
                    out.write(
                        f"revocation of {target_text(cmd)} committed in "
                        f"{answers.binding_seconds:.2f} s: every session it names is refused; "
                        "each session's own record follows\n"
                    )
                    out.flush()
        answers.seconds = time.monotonic() - written
        return report(cmd, answers, out, err)
    finally:
        reader.close()


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "revoke",
        help="end a session, a user's sessions or a tenant's now (an operator command)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tenant", required=True)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--session", help="end this session (with --user: keyed by its user)")
    which.add_argument("--all-users", action="store_true", help="end every session of the tenant")
    parser.add_argument("--user", help="end every session of this user")
    parser.add_argument(
        "--reason-admin", required=True, help="why, for the audit (required, at most 512 chars)"
    )
    parser.add_argument(
        "--operator",
        help="the operator principal the command names (default: User:<the Kafka login>, "
        f"else {DEFAULT_OPERATOR}); the enforcer applies only its allowed operators'",
    )
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=30.0,
        help="seconds to wait for the enforcer's answer (default 30)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    if args.all_users and args.user:
        sys.stderr.write("sessionwarden revoke: --all-users takes no --user\n")
        return INVALID
    if not (args.all_users or args.user or args.session):
        sys.stderr.write("sessionwarden revoke: name --session, --user or --all-users\n")
        return INVALID
    settings, _ = load(args)
    operator = args.operator or default_operator(settings)
    try:
        cmd = build_command(
            args.tenant, args.session, args.user, args.all_users, args.reason_admin, operator
        )
    except ValidationError as exc:
        for line in error_lines(exc, root="command"):
            sys.stderr.write(f"sessionwarden revoke: {line}\n")
        return INVALID
    return send_and_wait(settings, cmd, args.timeout, sys.stdout, sys.stderr)
