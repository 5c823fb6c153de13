"""`sessionwarden detect`: run the anomaly detectors (a faust-streaming worker)."""

from __future__ import annotations

import argparse

from sessionwarden.cli.options import Subcommands, load

EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    detect = sub.add_parser("detect", help="run the anomaly detectors (faust-streaming worker)")
    detect.add_argument("--policy", help="policy TOML with the [anomaly] thresholds")
    return detect


def run(args: argparse.Namespace) -> int:
    from sessionwarden.detect.app import run as run_detectors
    from sessionwarden.ops.logs import bind_process, configure_logging

    settings, policy = load(args)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="detect")
    return run_detectors(settings, policy)  # faust's worker handles SIGTERM/SIGINT itself
