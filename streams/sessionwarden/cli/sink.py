"""`sessionwarden sink postgres [--init] [--print-sql]`."""

from __future__ import annotations

import logging
import signal
import sys
from typing import TextIO

import psycopg

from sessionwarden.config.settings import Settings
from sessionwarden.policy import Policy
from sessionwarden.sink.postgres.consumer import PostgresSink, SinkError, connect
from sessionwarden.sink.postgres.dsn import describe_dsn, redact
from sessionwarden.sink.postgres.migrations import apply_migrations, full_sql

log = logging.getLogger(__name__)


def run_sink_postgres(
    settings: Settings, policy: Policy, init: bool, print_sql: bool, out: TextIO = sys.stdout
) -> int:
    """Print the schema's SQL, apply it, or run the sink; a fatal error raises SinkError."""
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
