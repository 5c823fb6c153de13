"""Dead letters: an input record the enforcer cannot use, kept whole with its reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message

# Dead letters carry the original bytes base64-encoded; the producer and the DLQ topic allow
# 4 MiB records, so up to 1 MiB of key and of value always fits.
MAX_DEAD_LETTER_RAW = 1024 * 1024


def dead_letter_doc(reason: str, detail: str, msg: Message, now: float) -> dict[str, Any]:
    """The dead-letter record of ``msg``; an oversized original keeps its first MiB."""
    key = msg.key()
    value = msg.value() or b""
    if len(value) > MAX_DEAD_LETTER_RAW:  # keep the record producible: the head is evidence
        detail = f"{detail} (original {len(value)} bytes, first {MAX_DEAD_LETTER_RAW} kept)"
        value = value[:MAX_DEAD_LETTER_RAW]
    if key is not None and len(key) > MAX_DEAD_LETTER_RAW:
        key = key[:MAX_DEAD_LETTER_RAW]
    return {
        "type": "dead_letter",
        "schema_version": 1,
        "reason": reason,
        "detail": detail[:2048],
        "source_topic": msg.topic(),
        "source_partition": msg.partition(),
        "source_offset": msg.offset(),
        "key_b64": base64.b64encode(key).decode() if key is not None else None,
        "value_b64": base64.b64encode(value).decode(),
        "dead_lettered_at": datetime.fromtimestamp(now, UTC),
    }
