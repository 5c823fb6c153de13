"""`sessionwarden sink postgres [--init] [--print-sql]`."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, TextIO

from sessionwarden.cli.options import Subcommands, load

if TYPE_CHECKING:
    from sessionwarden.config.settings import Settings
    from sessionwarden.policy import Policy

EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    sink = sub.add_parser("sink", help="keep the revocation set in a database")
    ssub = sink.add_subparsers(dest="sink_command", required=True, metavar="DATABASE")
    pg = ssub.add_parser("postgres", help="revocations into PostgreSQL (SESSIONWARDEN_PG_DSN)")
    pg.add_argument("--policy", help="policy TOML: rows are kept its longest absolute timeout")
    pg.add_argument("--init", action="store_true", help="apply the schema migrations and exit")
    pg.add_argument("--print-sql", action="store_true", help="print the schema's SQL and exit")
    return sink


def run(args: argparse.Namespace) -> int:
    from sessionwarden.ops.logs import bind_process, configure_logging

    settings, policy = load(args)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="sink")
    return run_sink_postgres(settings, policy, init=args.init, print_sql=args.print_sql)


def run_sink_postgres(
    settings: Settings, policy: Policy, init: bool, print_sql: bool, out: TextIO = sys.stdout
) -> int:
    """Print the schema's SQL, apply it, or run the sink; a fatal error raises SinkError."""
    import psycopg

    from sessionwarden.sink.postgres.consumer import PostgresSink, SinkError, connect
    from sessionwarden.sink.postgres.dsn import describe_dsn, redact
    from sessionwarden.sink.postgres.migrations import apply_migrations, full_sql

    if print_sql:
        out.write(full_sql())
        return 0
    if init:
        with connect(settings.sink.dsn) as conn:
            try:
                applied = apply_migrations(conn)
            except psycopg.Error as exc:
                raise SinkError(
                    f"cannot apply the schema as {describe_dsn(settings.sink.dsn)}: "
                    + redact(str(exc), settings.sink.dsn)
                ) from None
        names = ", ".join(f"{m.version:03d}_{m.name}" for m in applied) or "nothing (up to date)"
        out.write(f"applied {names}\n")
        return 0
    sink = PostgresSink(settings, policy)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sink.stop())
    sink.run()
    return 0
