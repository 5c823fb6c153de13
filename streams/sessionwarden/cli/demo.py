"""`sessionwarden demo` (also `make demo`): the processors on a local broker with simulated
traffic, live output and a closing audit."""

from __future__ import annotations

import argparse

from sessionwarden.cli.options import Subcommands

EXTRA = "audit"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    demo = sub.add_parser(
        "demo", help="run the processors on simulated traffic, live, then audit (Ctrl-C stops)"
    )
    demo.add_argument("--users", type=int, help="simulated users (default DEMO_USERS or 40)")
    demo.add_argument("--seed", type=int, help="random seed (default DEMO_SEED or 7)")
    demo.add_argument("--rate", type=float, help="average events/s (default 20)")
    return demo


def run(args: argparse.Namespace) -> int:
    from sessionwarden.audit.demo import main as demo

    given = {"--users": args.users, "--seed": args.seed, "--rate": args.rate}
    return demo([item for flag, value in given.items() if value is not None
                 for item in (flag, str(value))])  # fmt: skip
