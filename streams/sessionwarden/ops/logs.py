"""Logging configuration, applied only at the entry point, rendered by structlog.

Library code logs through ``logging.getLogger(__name__)`` with the values a query needs as
``extra={...}`` fields, never formatted into the message. The entry point calls
:func:`configure_logging` once: every record (ours, faust's, librdkafka's wrappers) then goes
through one structlog pipeline and comes out as one JSON object per line (``ts``, ``level``,
``logger``, ``msg`` and the fields) or as key=value text. Fields that hold for the whole
process (which service, which instance) are bound once with :func:`bind_process`.

A disabled level costs what ``Logger.isEnabledFor`` costs (a cached dict lookup): the record
is never built and no processor runs.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger


def _orjson_dumps(doc: Any, **_: Any) -> str:
    return orjson.dumps(doc, default=str).decode()


def _drop_internals(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event.pop("_record", None)
    event.pop("_from_structlog", None)
    return event


_PROCESS_FIELDS: dict[str, Any] = {}


def _add_process_fields(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key, value in _PROCESS_FIELDS.items():
        event.setdefault(key, value)
    return event


def _timestamp(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """When the line was logged (the record's time, not the formatting's), UTC, milliseconds."""
    record = event.get("_record")
    created = record.created if record is not None else time.time()
    event["ts"] = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return event


def _pre_chain() -> list[Processor]:
    """What every record goes through before rendering: its fields, then the process fields."""
    return [
        structlog.processors.EventRenamer("msg"),  # the message; frees "event" for a field
        structlog.stdlib.ExtraAdder(),
        structlog.contextvars.merge_contextvars,
        _add_process_fields,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _timestamp,
    ]


def build_formatter(fmt: str = "json") -> logging.Formatter:
    """The structlog formatter for a handler: JSON lines, or key=value text for people."""
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, event_key="msg")
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(),
        processors=[
            _drop_internals,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route every log record of the process to stderr through the structlog pipeline."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(build_formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def bind_process(**fields: Any) -> None:
    """Fields every later log line of this process carries, from any thread (bound once, at
    the entry point). Per-task context goes through ``structlog.contextvars`` instead."""
    _PROCESS_FIELDS.update(fields)


def error_fields(exc: BaseException | object) -> dict[str, Any]:
    """An error as log fields: its name (what a query filters on) and its text. A Kafka error,
    or an exception carrying one (KafkaException, the enforcer's TxnFailure), gives librdkafka's
    error name and whether it is retriable."""
    err = getattr(exc, "err", None) or (getattr(exc, "args", None) or (None,))[0]
    if not hasattr(err, "retriable"):
        err = exc
    if hasattr(err, "retriable") and hasattr(err, "name") and hasattr(err, "str"):
        return {"error": err.name(), "detail": err.str(), "retriable": err.retriable()}
    return {"error": type(err).__name__, "detail": str(err)}


class SessionHasher:
    """Salted hash of session ids for log lines: correlatable across lines, never the raw id.
    An empty salt means a random one for this process (hashes then differ across restarts)."""

    def __init__(self, salt: str = "") -> None:
        self._key = (salt or secrets.token_hex(16)).encode()[:64]

    def __call__(self, session_id: str) -> str:
        return hashlib.blake2b(session_id.encode(), key=self._key, digest_size=12).hexdigest()
