"""What several commands share: the settings and policy they load, and argument types."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sessionwarden.config.settings import Settings
    from sessionwarden.policy import Policy

Subcommands = argparse._SubParsersAction  # what add_subparsers returns


def load(args: argparse.Namespace) -> tuple[Settings, Policy]:
    """The settings (``--config``, ``--policy`` when the command has it) and the policy they
    name, or the shipped one; on a secured cluster, the connection is checked first."""
    from sessionwarden.config.settings import load_settings
    from sessionwarden.policy import default_policy, load_policy

    settings = load_settings(args.config, policy_file=getattr(args, "policy", None))
    policy = load_policy(settings.policy_file) if settings.policy_file else default_policy()
    check_kafka_security(settings)
    return settings, policy


def check_kafka_security(settings: Settings) -> None:
    """On a secured cluster, a wrong password or an untrusted CA ends the command with one
    line, instead of librdkafka retrying forever."""
    from sessionwarden.kafka.security import KafkaSecurity, check_connection

    security = KafkaSecurity.from_settings(settings.kafka)
    if security.protocol != "PLAINTEXT":
        check_connection(settings.kafka.bootstrap_servers, security)


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argument type: a number of ``kind`` greater than zero."""

    def parse(text: str) -> float:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse
