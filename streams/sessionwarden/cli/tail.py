"""`sessionwarden tail`: read an output topic (read_committed) and print it readably or as JSON."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import orjson

from sessionwarden.audit.records import render
from sessionwarden.cli.options import Subcommands, load
from sessionwarden.config.settings import Settings
from sessionwarden.kafka.reading import read_topic
from sessionwarden.kafka.security import KafkaSecurity


def tail(settings: Settings, which: str, as_json: bool, follow: bool, out: TextIO) -> int:
    topic = {
        "revocations": settings.topics.revocations,
        "audit": settings.topics.audit,
        "alerts": settings.topics.alerts,
        "dlq": settings.topics.dlq,
    }[which]
    timeout = None if follow else 2.0
    security = KafkaSecurity.from_settings(settings.kafka).librdkafka()
    for _, value in read_topic(
        settings.kafka.bootstrap_servers, topic, timeout=timeout, **security
    ):
        doc = orjson.loads(value)
        out.write((value.decode() if as_json else render(doc)) + "\n")
        out.flush()
    return 0


EXTRA = None


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser("tail", help="print an output topic (read_committed)")
    parser.add_argument("topic", choices=["revocations", "audit", "alerts", "dlq"])
    parser.add_argument("--json", action="store_true", help="raw JSON lines instead of text")
    parser.add_argument("-f", "--follow", action="store_true", help="keep waiting for new records")
    return parser


def run(args: argparse.Namespace) -> int:
    settings, _ = load(args)
    try:
        return tail(settings, args.topic, args.json, args.follow, sys.stdout)
    except BrokenPipeError:
        return 0
