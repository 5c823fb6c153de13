"""`sessionwarden publish`: JSON lines on stdin -> validated events on the input topic."""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from pydantic import ValidationError

from sessionwarden.cli.options import Subcommands, load
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.inputs import AUTH_EVENT_ADAPTER
from sessionwarden.contracts.validation import error_lines
from sessionwarden.kafka.security import KafkaSecurity
from sessionwarden.sdk.publisher import AuthEventPublisher

MAX_LINE_BYTES = 64 * 1024


def _filled(doc: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC)
    doc.setdefault("event_id", str(uuid.uuid4()))
    doc.setdefault("occurred_at", now.isoformat())
    if doc.get("type") == "login":
        doc.setdefault("auth_time", doc["occurred_at"])
    return doc


def publish_lines(settings: Settings, lines: TextIO, err: TextIO, fill: bool = False) -> int:
    """Publish every valid line; report each invalid one with its line number. Exit 1 if any."""
    sent = bad = 0
    security = KafkaSecurity.from_settings(settings.kafka).librdkafka()
    with AuthEventPublisher(
        settings.kafka.bootstrap_servers, settings.topics.input, **security
    ) as publisher:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                if len(line) > MAX_LINE_BYTES:
                    raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
                doc = orjson.loads(line)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                event = AUTH_EVENT_ADAPTER.validate_python(_filled(doc) if fill else doc)
            except (orjson.JSONDecodeError, ValueError, ValidationError) as exc:
                detail = (
                    "; ".join(error_lines(exc)) if isinstance(exc, ValidationError) else str(exc)
                )
                err.write(f"line {number}: rejected: {detail}\n")
                bad += 1
                continue
            publisher.publish(event)
            sent += 1
    err.write(f"published {sent} event(s) to {settings.topics.input}, rejected {bad}\n")
    return 1 if bad else 0


EXTRA = None


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    publish = sub.add_parser(
        "publish", help="read auth events as JSON lines on stdin and publish the valid ones"
    )
    publish.add_argument(
        "--fill", action="store_true", help="add a missing event_id, occurred_at or auth_time (now)"
    )
    return publish


def run(args: argparse.Namespace) -> int:
    settings, _ = load(args)
    return publish_lines(settings, sys.stdin, sys.stderr, fill=args.fill)
