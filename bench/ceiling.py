"""Bare confluent-kafka loops on the enforcer's input topic, nothing else: the limits it is
measured against.

- ``decode`` (the ceiling): consume(1000) + decode each record with the product's decoder.
- ``raw``: consume(1000) and take each record's value, no decode: the physical limit of a
  Python consumer on one core.

Usage: python -m bench.ceiling SERVERS TOPIC EVENTS [decode|raw]"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid

import orjson
from confluent_kafka import Consumer

from sessionwarden.contracts.codec import DecodeError, decode_auth_event


def main() -> None:
    servers, topic, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "decode"
    if mode not in ("decode", "raw"):
        raise SystemExit(f"unknown mode {mode!r}: decode or raw")
    c = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"ceiling-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    c.subscribe([topic])
    n = 0
    started = 0.0
    decode = mode == "decode"
    while n < total:
        msgs = c.consume(1000, 1.0)
        if msgs and not started:
            started = time.perf_counter()
        for m in msgs:
            if m.error() is None:
                value = m.value()
                if decode:
                    with contextlib.suppress(DecodeError):
                        decode_auth_event(value)
                n += 1
    elapsed = time.perf_counter() - started
    c.close()
    result = {"events": n, "seconds": elapsed, "rate": n / elapsed, "mode": mode}
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
