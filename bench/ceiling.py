"""Bare confluent-kafka loop: consume(1000) + decode with the codec, nothing else (the ceiling).
Usage: python -m bench.ceiling SERVERS TOPIC EVENTS"""

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
    while n < total:
        msgs = c.consume(1000, 1.0)
        if msgs and not started:
            started = time.perf_counter()
        for m in msgs:
            if m.error() is None:
                with contextlib.suppress(DecodeError):
                    decode_auth_event(m.value())
                n += 1
    elapsed = time.perf_counter() - started
    c.close()
    print(orjson.dumps({"events": n, "seconds": elapsed, "rate": n / elapsed}).decode())


if __name__ == "__main__":
    main()
