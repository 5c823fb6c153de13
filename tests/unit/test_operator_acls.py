"""The commands topic: operators alone write it, the enforcer reads it, it is co-partitioned."""

from __future__ import annotations

from sessionwarden.cli.acls import Principals, acl_plan
from sessionwarden.config.settings import load_settings
from sessionwarden.kafka.topics import topic_specs


def test_only_operator_principals_may_write_commands() -> None:
    """A command ends sessions: a producer, service, detector or the security team's read-only
    login that could write one could end any session."""
    settings = load_settings(topic_prefix="p.")
    plan = acl_plan(settings, Principals(operator="User:oncall"))
    writers = {
        a.principal for a in plan if a.operation == "WRITE" and a.name == "p.sessionwarden.commands"
    }
    assert {"User:oncall"} == writers


def test_the_operator_writes_commands_and_reads_only_the_audit_answer() -> None:
    """Nothing else: no auth events (no forged grant), no revocations (no forged verdict)."""
    settings = load_settings(topic_prefix="p.")
    plan = acl_plan(settings, Principals(operator="User:oncall"))
    rules = {
        (a.operation, a.resource, a.name, a.pattern) for a in plan if a.principal == "User:oncall"
    }
    assert {
        ("WRITE", "TOPIC", "p.sessionwarden.commands", "LITERAL"),
        ("READ", "TOPIC", "p.sessionwarden.audit", "LITERAL"),
        ("READ", "GROUP", "sessionwarden-revoke-", "PREFIXED"),
    } == rules


def test_the_enforcer_reads_commands() -> None:
    """Without it a secured enforcer could not apply a single command."""
    plan = acl_plan(load_settings(), Principals())
    readers = {
        a.principal for a in plan if a.operation == "READ" and a.name == "sessionwarden.commands"
    }
    assert {"User:sessionwarden-enforcer"} == readers


def test_commands_are_co_partitioned_with_auth_events_and_timed_by_the_broker() -> None:
    """A user's command must land on the partition that holds the user's sessions, and the
    enforcer judges it by its append time like any input."""
    specs = {s.name: s for s in topic_specs(load_settings(partitions=6), 3600)}
    commands, events = specs["sessionwarden.commands"], specs["auth.events"]
    assert (events.partitions, events.replication_factor) == (
        commands.partitions,
        commands.replication_factor,
    )
    assert "LogAppendTime" == commands.configs["message.timestamp.type"]


def test_allowed_operators_default_to_the_operator_principal_and_can_be_emptied() -> None:
    """Out of the box the default operator login's commands apply; an empty list refuses all."""
    assert (
        frozenset({"User:sessionwarden-operator"}) == load_settings().enforcer.allowed_operators()
    )
    assert frozenset() == load_settings(operators="").enforcer.allowed_operators()
    assert (
        frozenset({"User:a", "User:b"})
        == load_settings(operators="User:a, User:b").enforcer.allowed_operators()
    )


def test_the_security_principal_writes_commands_only_when_the_dashboard_has_actions() -> None:
    """Read only by default; with dashboard_operator set the dashboard's login may write
    commands (and only commands)."""

    def writes(**overrides: str) -> set[str]:
        plan = acl_plan(load_settings(**overrides), Principals())
        return {a.name for a in plan if a.principal.endswith("security") and a.operation == "WRITE"}

    assert set() == writes()
    assert {"sessionwarden.commands"} == writes(dashboard_operator="User:dashboard")
