"""`sessionwarden simulate`: publish seeded traffic and write its ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from sessionwarden.cli.options import Subcommands, load, positive

EXTRA = "audit"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    sim = sub.add_parser("simulate", help="publish seeded traffic and write its ground truth")
    sim.add_argument("--policy", help="policy TOML the enforcer runs with (default: shipped)")
    sim.add_argument("--users", type=positive(int), default=50, help="users (default 50)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument(
        "--rate", type=positive(float), default=50.0, help="average events/s (default 50)"
    )
    sim.add_argument("--truth", default="sim-truth.json", help="ground truth output file")
    sim.add_argument(
        "--faults",
        default="",
        help="comma-separated fault modes: skew, reorder, delay, duplicate, partitioner (or all)",
    )
    sim.add_argument(
        "--producer-delay-budget",
        type=float,
        default=0.0,
        metavar="S",
        help="the enforcer's SESSIONWARDEN_PRODUCER_DELAY_BUDGET_S (default 0)",
    )
    return sim


def run(args: argparse.Namespace) -> int:
    from sessionwarden.audit.faults import parse_faults
    from sessionwarden.audit.simulate import simulate

    settings, policy = load(args)
    simulate(
        settings,
        policy,
        args.users,
        args.seed,
        args.rate,
        Path(args.truth),
        faults=parse_faults(args.faults),
        budget=args.producer_delay_budget,
    )
    return 0
