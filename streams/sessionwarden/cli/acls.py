"""`sessionwarden acls`: the least-privilege ACL set of every principal, printed or applied.

Each principal gets exactly what its process does on the wire, nothing more; every rule says
which threat it leaves closed by what it does not grant. docs/SECURITY.md has the table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, TextIO

from sessionwarden.cli.options import Subcommands, check_kafka_security

if TYPE_CHECKING:
    from confluent_kafka.admin import AclBinding, AdminClient

    from sessionwarden.config.settings import Settings

LISTENER_GROUP_PREFIX = "sessionwarden-listener-"  # RevocationListener: never joined
TAIL_GROUP_PREFIX = "sessionwarden-tail-"  # `sessionwarden tail` / `verify`: never committed
REVOKE_GROUP_PREFIX = "sessionwarden-revoke-"  # `sessionwarden revoke`: assign only
DASHBOARD_GROUP_PREFIX = "sessionwarden-dashboard-"  # the dashboard's feed: assign only


@dataclass(frozen=True)
class Principals:
    enforcer: str = "User:sessionwarden-enforcer"
    detect: str = "User:sessionwarden-detect"
    producer: str = "User:sessionwarden-producer"
    service: str = "User:sessionwarden-service"
    security: str = "User:sessionwarden-security"
    sink: str = "User:sessionwarden-sink"  # the PostgreSQL sink's consumer
    operator: str = "User:sessionwarden-operator"  # `sessionwarden revoke`
    idp: str = "User:sessionwarden-idp"  # `sessionwarden idp keycloak`


@dataclass(frozen=True)
class Acl:
    """One ALLOW rule: ``principal`` may ``operation`` on a resource (host ``*``)."""

    principal: str
    operation: str  # READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS, CREATE
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL or PREFIXED
    why: str

    def line(self) -> str:
        where = f"{self.resource.lower()} {self.name}{'*' if self.pattern == 'PREFIXED' else ''}"
        return f"{self.principal:34} {self.operation:16} {where:52} {self.why}"


def _topic(principal: str, op: str, name: str, why: str, prefixed: bool = False) -> Acl:
    return Acl(principal, op, "TOPIC", name, "PREFIXED" if prefixed else "LITERAL", why)


def _group(principal: str, name: str, why: str, prefixed: bool = False) -> Acl:
    return Acl(principal, "READ", "GROUP", name, "PREFIXED" if prefixed else "LITERAL", why)


def acl_plan(settings: Settings, who: Principals) -> list[Acl]:
    """The minimal ALLOW rules; everything not listed is denied by the authorizer."""
    from sessionwarden.caep.transmitter import transmitter_group
    from sessionwarden.detect.app import app_id

    t = settings.topics
    e, d, p, s, sec, k = who.enforcer, who.detect, who.producer, who.service, who.security, who.sink
    op = who.operator
    detect_id = app_id(settings)
    txn_prefix = f"{settings.topics.prefix}{settings.enforcer.group_id}-"
    return [
        _topic(e, "READ", t.input, "consume auth events"),
        _topic(e, "READ", t.commands, "consume operator commands"),
        _group(
            e, settings.enforcer.group_id, "its consumer group, offsets committed in transactions"
        ),
        _group(e, f"{settings.enforcer.group_id}-restore", "the restore consumer (assign only)"),
        _group(e, f"{settings.enforcer.group_id}-commands", "the commands reader (assign only)"),
        *(
            _topic(e, "WRITE", name, "its outputs")
            for name in (t.revocations, t.audit, t.dlq, t.caep, t.enforcer_state)
        ),
        _topic(e, "WRITE", t.input, "forward a record on the wrong partition to its key's"),
        _topic(e, "READ", t.enforcer_state, "restore its state changelog"),
        _topic(e, "DESCRIBE_CONFIGS", t.enforcer_state, "tombstone retention, checks snapshots"),
        Acl(e, "WRITE", "TRANSACTIONAL_ID", txn_prefix, "PREFIXED", "its transactions"),
        Acl(e, "DESCRIBE", "TRANSACTIONAL_ID", txn_prefix, "PREFIXED", "its transactions"),
        _topic(e, "READ", t.revocations, "the CAEP transmitter signs committed records"),
        _topic(e, "READ", t.audit, "the CAEP transmitter signs committed records"),
        _group(e, transmitter_group(settings), "the CAEP transmitter's consumer group"),
        _topic(d, "READ", t.audit, "consume the audit stream"),
        _topic(d, "WRITE", t.alerts, "publish alerts"),
        _topic(d, "WRITE", t.caep, "publish CAEP alerts (when enabled)"),
        _group(d, detect_id, "its consumer group"),
        *(
            _topic(d, op, f"{detect_id}-", "its faust changelog topics", prefixed=True)
            for op in ("CREATE", "READ", "WRITE")
        ),
        _topic(p, "WRITE", t.input, "publish auth events, nothing else"),
        _topic(s, "READ", t.revocations, "the revocation set, nothing else"),
        _group(s, LISTENER_GROUP_PREFIX, "listener client ids (never joined)", prefixed=True),
        *(
            _topic(sec, "READ", name, "investigate")
            for name in (t.alerts, t.audit, t.dlq, t.revocations)
        ),
        _group(sec, TAIL_GROUP_PREFIX, "`tail` and `verify` readers", prefixed=True),
        # The dashboard: its feed's group is never joined, but librdkafka looks up its
        # coordinator; its lag panel reads end offsets and committed offsets, never a record.
        Acl(sec, "DESCRIBE", "GROUP", DASHBOARD_GROUP_PREFIX, "PREFIXED", "the dashboard's feed"),
        _topic(sec, "DESCRIBE", t.input, "the enforcer's lag on the dashboard (no records)"),
        *(
            Acl(sec, "DESCRIBE", "GROUP", group, "LITERAL", f"{who} committed offsets (lag)")
            for who, group in (
                ("the enforcer's", settings.enforcer.group_id),
                ("the detectors'", detect_id),
            )
        ),
        # READ implies the DESCRIBE that metadata, FindCoordinator, OffsetFetch and ListOffsets
        # need; the sink keeps its offsets in the database but joins a group to share the work.
        _topic(k, "READ", t.revocations, "revocations into PostgreSQL, nothing else"),
        _group(k, settings.sink.group_id, "its consumer group (offsets in the database)"),
        # The identity provider actuator: committed revocations out to Keycloak.
        _topic(who.idp, "READ", t.revocations, "revocations out to Keycloak, nothing else"),
        _group(who.idp, settings.keycloak.group_id, "its consumer group"),
        *(
            [_topic(sec, "WRITE", t.commands, "the dashboard's revocation actions")]
            if settings.dashboard.operator
            else []
        ),
        # Operators end sessions on purpose: the only writer of commands. They read the audit
        # trail for the enforcer's answer (assign only; the group is never joined).
        _topic(op, "WRITE", t.commands, "operator commands, nothing else"),
        _topic(op, "READ", t.audit, "the enforcer's answer to a command"),
        _group(op, REVOKE_GROUP_PREFIX, "`revoke` readers (never joined)", prefixed=True),
    ]


def print_plan(plan: list[Acl], out: TextIO) -> None:
    out.write(f"{'principal':34} {'operation':16} {'resource':52} why\n")
    for acl in plan:
        out.write(acl.line() + "\n")


def bindings(plan: list[Acl]) -> list[AclBinding]:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return [
        AclBinding(
            ResourceType[acl.resource],
            acl.name,
            ResourcePatternType[acl.pattern],
            acl.principal,
            "*",
            AclOperation[acl.operation],
            AclPermissionType.ALLOW,
        )
        for acl in plan
    ]


def apply_plan(admin: AdminClient, plan: list[Acl], timeout: float = 30.0) -> int:
    """Create every rule (creating an existing rule changes nothing); returns how many."""
    futures = admin.create_acls(bindings(plan), request_timeout=timeout)
    for future in futures.values():
        future.result(timeout=timeout)
    return len(futures)


# The plan names the detectors' and the CAEP transmitter's groups, which their processors define.
EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    acls = sub.add_parser("acls", help="print (--apply: create) the least-privilege ACLs")
    acls.add_argument("--apply", action="store_true", help="create them (needs an admin login)")
    for who in fields(Principals):
        acls.add_argument(
            f"--{who.name}-principal", metavar="PRINCIPAL", help=f"default {who.default}"
        )
    return acls


def run(args: argparse.Namespace) -> int:
    from sessionwarden.config.settings import load_settings

    settings = load_settings(args.config)  # printing needs no connection
    names = [f.name for f in fields(Principals)]
    given = {n: getattr(args, f"{n}_principal") for n in names if getattr(args, f"{n}_principal")}
    plan = acl_plan(settings, Principals(**given))
    print_plan(plan, sys.stdout)
    if args.apply:
        from sessionwarden.kafka.topics import admin_client

        check_kafka_security(settings)
        count = apply_plan(admin_client(settings), plan)
        print(f"applied {count} ACL(s)")
    return 0
