"""Logging configuration, applied only at the entry point: JSON lines or plain text."""

from __future__ import annotations

import hashlib
import logging
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={...}` fields are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class SessionHasher:
    """Salted hash of session ids for log lines: correlatable across lines, never the raw id.
    An empty salt means a random one for this process (hashes then differ across restarts)."""

    def __init__(self, salt: str = "") -> None:
        self._key = (salt or secrets.token_hex(16)).encode()[:64]

    def __call__(self, session_id: str) -> str:
        return hashlib.blake2b(session_id.encode(), key=self._key, digest_size=12).hexdigest()
