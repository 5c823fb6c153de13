"""`sessionwarden enforce`: run the enforcer until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal

from sessionwarden.cli.options import Subcommands, load

EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    enforce = sub.add_parser("enforce", help="run the enforcer (SIGTERM/SIGINT stop it cleanly)")
    enforce.add_argument("--policy", help="policy TOML (default: the shipped policy)")
    return enforce


def run(args: argparse.Namespace) -> int:
    from sessionwarden.enforcer.loop import EnforcerLoop
    from sessionwarden.enforcer.txn import EnforcerExit
    from sessionwarden.ops.logs import bind_process, configure_logging

    settings, policy = load(args)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="enforcer", instance=settings.enforcer.instance_id)
    loop = EnforcerLoop(settings, policy)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.stop())
    try:
        loop.run()
    except EnforcerExit as exc:
        return exc.code
    return 0
