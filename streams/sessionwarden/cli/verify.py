"""`sessionwarden verify`: the command line of the audit (sessionwarden.audit.verify)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sessionwarden.audit.verify import run_verify
from sessionwarden.cli.options import Subcommands, load, positive

EXTRA = "audit"  # the PNG histogram (--png) is drawn with matplotlib


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    verify = sub.add_parser("verify", help="audit revocations against a simulation's truth")
    verify.add_argument("--truth", default="sim-truth.json", help="ground truth from simulate")
    verify.add_argument(
        "--tolerance",
        type=positive(float),
        default=2.0,
        help="seconds after a deadline still counted on time (default 2)",
    )
    verify.add_argument("--json", help="also write the report as JSON here")
    verify.add_argument("--png", help="also write a latency histogram (PNG) here")
    verify.add_argument(
        "--no-wait", action="store_true", help="do not wait for the run's last deadline to pass"
    )
    return verify


def run(args: argparse.Namespace) -> int:
    settings, _ = load(args)
    return run_verify(
        settings,
        Path(args.truth),
        args.tolerance,
        Path(args.json) if args.json else None,
        Path(args.png) if args.png else None,
        wait=not args.no_wait,
    )
