"""`sessionwarden tail`: read an output topic (read_committed) and print it readably or as JSON."""

from __future__ import annotations

import argparse
import base64
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from sessionwarden.cli.options import Subcommands, load
from sessionwarden.config.settings import Settings
from sessionwarden.errors import SessionwardenError


class TopicUnavailable(SessionwardenError):
    """The topic cannot be read: unknown, or this principal is not allowed to describe it."""


def read_topic(
    bootstrap_servers: str,
    topic: str,
    from_beginning: bool = True,
    timeout: float | None = None,
    stop: Callable[[], bool] = lambda: False,
    **config: Any,
) -> Iterator[tuple[bytes | None, bytes]]:
    """Yield (key, value) of committed records of every partition; ends after `timeout` s idle.
    ``config`` extends the consumer's librdkafka properties (security settings). Raises
    TopicUnavailable when the topic's metadata carries an error."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"sessionwarden-tail-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "log_level": 3,
            **config,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=10)
        if md.topics[topic].error is not None:
            raise TopicUnavailable(f"topic {topic}: {md.topics[topic].error.str()}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in md.topics[topic].partitions])
        idle_since = time.monotonic()
        while not stop():
            msgs = consumer.consume(500, 0.2)
            if not msgs and timeout is not None and time.monotonic() - idle_since > timeout:
                return
            for msg in msgs:
                if msg.error() is None and msg.value() is not None:
                    idle_since = time.monotonic()
                    yield msg.key(), msg.value()
    finally:
        consumer.close()


def render(doc: dict[str, Any]) -> str:
    """One readable line per record."""
    kind = doc.get("type", "?")
    if kind == "revocation":
        return (
            f"{doc['effective_at']}  REVOKED     {doc['reason']:<20} session={doc['session_id']}"
            f" user={doc['user_id']} roles={','.join(doc['roles'])}"
        )
    if kind == "revalidation":
        return (
            f"{doc['effective_at']}  REVALIDATE  +{','.join(doc['roles_granted'])}"
            f" session={doc['session_id']} user={doc['user_id']}"
        )
    if kind == "session_started":
        return (
            f"{doc['occurred_at']}  START       {doc['user_type']}/{doc['risk_profile']}"
            f" session={doc['session_id']} user={doc['user_id']}"
            f" idle={doc['idle_timeout_s']:g}s absolute={doc['absolute_timeout_s']:g}s"
        )
    if kind == "session_ended":
        return (
            f"{doc['occurred_at']}  END         {doc['reason']:<20} session={doc['session_id']}"
            f" user={doc['user_id']} after {doc['duration_s']:.1f}s"
        )
    if kind == "role_changed":
        return (
            f"{doc['occurred_at']}  ROLES       user={doc['user_id']} by={doc['actor']}"
            f" +{','.join(doc['roles_granted']) or '-'} -{','.join(doc['roles_removed']) or '-'}"
            f" privilege {doc['privilege_before']}->{doc['privilege_after']}"
        )
    if kind == "ended_session_used":
        return (
            f"{doc['occurred_at']}  USED-ENDED  {doc['session_state']} session="
            f"{doc['session_id']} user={doc['user_id']} {doc['action']} {doc['resource']}"
        )
    if kind == "high_risk_operation":
        verdict = "allowed" if doc["allowed"] else "STEP-UP REQUIRED"
        return (
            f"{doc['occurred_at']}  HIGH-RISK   {doc['action']} session={doc['session_id']}"
            f" auth age {doc['auth_age_s']:.0f}s/{doc['max_auth_age_s']:.0f}s {verdict}"
        )
    if kind == "alert":
        return (
            f"{doc['last_seen']}  ALERT {doc['severity'].upper():<8} {doc['kind']}"
            f" user={doc['user_id']}: {doc['summary']}"
        )
    if kind == "dead_letter":
        raw = base64.b64decode(doc["value_b64"])[:80]
        return (
            f"{doc['dead_lettered_at']}  DEAD-LETTER {doc['reason']} "
            f"{doc['source_topic']}[{doc['source_partition']}]@{doc['source_offset']}: "
            f"{doc['detail'][:160]} raw={raw!r}"
        )
    return orjson.dumps(doc).decode()


def tail(settings: Settings, which: str, as_json: bool, follow: bool, out: TextIO) -> int:
    topic = {
        "revocations": settings.topics.revocations,
        "audit": settings.topics.audit,
        "alerts": settings.topics.alerts,
        "dlq": settings.topics.dlq,
    }[which]
    timeout = None if follow else 2.0
    security = settings.kafka.security.librdkafka()
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
