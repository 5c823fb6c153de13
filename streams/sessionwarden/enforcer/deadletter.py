"""Dead letters: an input record the enforcer cannot use, with its reason and (a bounded head
of) its bytes."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message

from sessionwarden.contracts.outputs import MAX_DETAIL_CHARS

# A dead letter carries the head of the original key and value, base64-encoded, and a hash of
# the whole when that is cut: the record itself stays on its topic (source coordinates below)
# for its retention. Bounded so that a flood of large hostile records makes small dead letters
# (a 64 KB record made an 87 KB one) and no dead letter can ever be too large to produce.
MAX_DEAD_LETTER_VALUE = 4096
MAX_DEAD_LETTER_KEY = 1024
"""Also the most of the source key the DLQ record's own Kafka key keeps."""


def _cut(name: str, data: bytes, keep: int) -> tuple[bytes, str]:
    """The kept head of ``data`` and the marker saying what was cut ('' if nothing)."""
    if len(data) <= keep:
        return data, ""
    digest = hashlib.sha256(data).hexdigest()
    return data[
        :keep
    ], f" [{name} truncated: {len(data)} bytes, sha256 {digest}, first {keep} kept]"


def dead_letter_doc(
    reason: str, detail: str, msg: Message, now: float, keep_payload: bool = True
) -> dict[str, Any]:
    """The dead-letter record of ``msg``. ``keep_payload=False`` carries no bytes at all (only
    hashes): for a record whose dead letter could not be committed with them."""
    key = msg.key()
    value, value_marker = _cut("value", msg.value() or b"", MAX_DEAD_LETTER_VALUE * keep_payload)
    marker = value_marker
    if key is not None:
        key, key_marker = _cut("key", key, MAX_DEAD_LETTER_KEY * keep_payload)
        marker += key_marker
    # The reason's own text is cut, never the marker: both must be readable.
    detail = detail[: max(0, MAX_DETAIL_CHARS - len(marker))] + marker
    return {
        "type": "dead_letter",
        "schema_version": 1,
        "reason": reason,
        "detail": detail[:MAX_DETAIL_CHARS],
        "source_topic": msg.topic(),
        "source_partition": msg.partition(),
        "source_offset": msg.offset(),
        "key_b64": base64.b64encode(key).decode() if key is not None else None,
        "value_b64": base64.b64encode(value).decode(),
        "dead_lettered_at": datetime.fromtimestamp(now, UTC),
    }
