"""Bare faust-streaming agent that only consumes the topic (the peer).
Usage: python -m bench.faust_peer SERVERS TOPIC EVENTS"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid

import faust
import orjson


def main() -> None:
    servers, topic_name, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{servers}",
        value_serializer="raw",
        web_enabled=False,
        store="memory://",
        topic_allow_declare=False,
        datadir=tempfile.mkdtemp(prefix="bench-faust-"),
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(topic_name, value_type=bytes, value_serializer="raw")
    state = {"n": 0, "t0": 0.0}

    @app.agent(topic)
    async def count(stream):  # type: ignore[no-untyped-def]
        async for _ in stream:
            if not state["n"]:
                state["t0"] = time.perf_counter()
            state["n"] += 1
            if state["n"] >= total:
                elapsed = time.perf_counter() - state["t0"]
                result = {"events": state["n"], "seconds": elapsed, "rate": state["n"] / elapsed}
                # faust redirects sys.stdout into its logger: write to the real descriptor
                os.write(1, orjson.dumps(result) + b"\n")
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
