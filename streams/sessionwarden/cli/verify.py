"""The Kafka side of `sessionwarden verify`: wait for the run to finish, read, report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

from sessionwarden.audit.verify import audit, render_text, write_histogram
from sessionwarden.cli.options import Subcommands, load, positive
from sessionwarden.cli.tail import read_topic
from sessionwarden.config.settings import Settings
from sessionwarden.errors import ConfigError


def read_run(settings: Settings, topic: str, run_id: str) -> list[dict[str, Any]]:
    docs = []
    security = settings.kafka.security.librdkafka()
    for _, value in read_topic(settings.kafka.bootstrap_servers, topic, timeout=2.0, **security):
        if run_id.encode() in value:  # cheap pre-filter: every id of the run carries it
            doc = orjson.loads(value)
            if str(doc.get("session_id", "")).startswith(run_id):
                docs.append(doc)
    return docs


def run_verify(
    settings: Settings,
    truth_path: Path,
    tolerance: float,
    json_path: Path | None,
    png_path: Path | None,
    wait: bool = True,
    out: TextIO = sys.stdout,
) -> int:
    try:
        truth = orjson.loads(truth_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read ground truth {truth_path}: {exc}") from exc
    until = truth["last_deadline"] + tolerance
    if wait and time.time() < until:
        out.write(f"waiting {until - time.time():.1f}s for the run's last deadline to pass\n")
        out.flush()
        time.sleep(until - time.time())
    revocations = read_run(settings, settings.topics.revocations, truth["run_id"])
    used = [
        d
        for d in read_run(settings, settings.topics.audit, truth["run_id"])
        if d.get("type") in ("ended_session_used", "activity_after_revocation")
    ]
    report = audit(truth, revocations, used, tolerance)
    out.write(render_text(report) + "\n")
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
        out.write(f"JSON report: {json_path}\n")
    if png_path is not None and report.latencies:
        write_histogram(report.latencies, str(png_path), f"run {report.run_id}")
        out.write(f"latency histogram: {png_path}\n")
    return 0 if report.ok else 1


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
