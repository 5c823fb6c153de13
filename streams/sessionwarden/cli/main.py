"""The `sessionwarden` command line: the parser and the dispatch, one module per command.

Every command module has ``EXTRA`` (the package extra it needs, None for the SDK alone),
``add_parser(sub)`` and ``run(args)``; a module imports its processor inside ``run``, so the
parser, ``--help`` and the SDK's own commands work on a bare ``pip install sessionwarden``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Protocol

from sessionwarden.cli import (
    acls,
    dashboard,
    demo,
    detect,
    drill,
    enforce,
    gate,
    idp,
    policy,
    publish,
    revoke,
    sessions,
    simulate,
    sink,
    ssf,
    tail,
    topics,
    verify,
)
from sessionwarden.cli.extras import MissingExtra, needs_extra
from sessionwarden.cli.options import Subcommands
from sessionwarden.errors import SessionwardenError


class Command(Protocol):
    """What a command module provides."""

    @property
    def EXTRA(self) -> str | None: ...

    def add_parser(self, sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: tuple[Command, ...] = (
    topics,
    acls,
    policy,
    enforce,
    detect,
    publish,
    tail,
    sessions,
    revoke,
    simulate,
    verify,
    sink,
    idp,
    dashboard,
    gate,
    ssf,
    drill,
    demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionwarden",
        description="Kafka-native session timeout enforcement and real-time revocation.",
    )
    parser.add_argument("--config", help="TOML settings file (environment variables win)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(run=command.run, extra=command.EXTRA)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with needs_extra(args.command, args.extra):
            return int(args.run(args))
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2
    except SessionwardenError as exc:
        print(f"sessionwarden: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
