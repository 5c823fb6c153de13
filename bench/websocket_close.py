"""WebSocket close latency: from a service's listener reading a revocation to the close frame
reaching the client.

    .venv/bin/python -m bench.websocket_close [--sessions 200] [--spread 10]

The example service (the drill's ``Service``: a real RevocationListener feeding
RevocationMiddleware, served by uvicorn on 127.0.0.1) holds one WebSocket per session, opened
with a session id it issued. Revocations are then committed directly, one transaction each,
evenly spread over ``--spread`` seconds. Latency = the moment the client's reader saw the
4401 close frame - the moment the service's listener applied the revocation (its callback
runs right after the insert, before the middleware's). Client and service run in this
process, so they share the clock. The target is p99 <= 100 ms.

Human-readable lines go to stderr; the result is one JSON line on stdout. The benchmark makes
its own prefixed topics and deletes them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from bench.common import bench_topics
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.ops.stats import percentiles
from sessionwarden.policy import default_policy
from sessionwarden.testing.example import Service

TENANT = "bench"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def wait_leaders(servers: str, topic: str, timeout: float) -> None:
    """Until the fresh topic's end offsets can be listed (its partitions have leaders)."""
    deadline = time.monotonic() + timeout
    while True:
        admin = AdminClient({"bootstrap.servers": servers})
        found = admin.list_topics(topic, timeout=10).topics[topic].partitions
        request = {TopicPartition(topic, p): OffsetSpec.latest() for p in found}
        try:
            for future in admin.list_offsets(request, request_timeout=10).values():
                future.result()
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def revoke_all(settings: Settings, session_ids: list[str], spread: float) -> None:
    """One transaction per revocation, as the enforcer commits them, spread evenly."""
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "transactional.id": f"{settings.topics.prefix}bench-wsclose",
            "linger.ms": 2,
        }
    )
    producer.init_transactions(30)
    for n, sid in enumerate(session_ids):
        stamp = datetime.now(UTC)
        record = Revocation(
            revocation_id=uuid.uuid4(), session_id=sid, user_id=f"user-{n}", tenant=TENANT,
            reason="logout", effective_at=stamp, emitted_at=stamp, roles=[], permissions=[],
            policy_version="bench",
        )  # fmt: skip
        producer.begin_transaction()
        producer.produce(settings.topics.revocations, encode(record), sid.encode())
        producer.commit_transaction(30)
        time.sleep(spread / len(session_ids))


async def hold(ws: aiohttp.ClientWebSocketResponse) -> tuple[float, int | None]:
    """Read until the close frame; when it came and its code."""
    async for _ in ws:
        pass
    return time.time(), ws.close_code


async def drive(service: Service, settings: Settings, sessions: int, spread: float) -> list[float]:
    url = service.url.replace("http://", "ws://", 1) + "/ws/echo"
    ids = [service.issue() for _ in range(sessions)]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as client:
        sockets = [
            await client.ws_connect(url, headers={"x-session-id": sid}, heartbeat=None)
            for sid in ids
        ]
        say(f"{len(sockets)} WebSockets open; revoking their sessions over {spread:g} s")
        readers = [asyncio.create_task(hold(ws)) for ws in sockets]
        await asyncio.to_thread(revoke_all, settings, ids, spread)
        done = await asyncio.wait_for(asyncio.gather(*readers), spread + 30)
    return [
        (closed_at - service.revoked_at[sid]) * 1000
        for sid, (closed_at, code) in zip(ids, done, strict=True)
        if code == 4401 and sid in service.revoked_at
    ]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with bench_topics("wsclose", args.partitions, args.servers) as settings:
        wait_leaders(settings.kafka.bootstrap_servers, settings.topics.revocations, 60)
        with Service(settings, default_policy(), TENANT) as service:
            samples = asyncio.run(drive(service, settings, args.sessions, args.spread))
    if not samples:
        raise SystemExit("no WebSocket was closed for its revocation")
    result: dict[str, Any] = {"bench": "websocket_close", "sessions": args.sessions,
                              "closed": len(samples)}  # fmt: skip
    for pct, value in zip((50, 90, 99), percentiles(samples, 50, 90, 99), strict=True):
        result[f"p{pct}_ms"] = round(value, 1)
    result["max_ms"] = round(max(samples), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds to revoke them in")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--servers", help="bootstrap servers (default: the bench broker)")
    args = parser.parse_args()
    result = measure(args)
    say(
        f"close after read: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"max {result['max_ms']:.1f} ms ({result['closed']}/{result['sessions']} sockets)"
    )
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
