"""Keycloak events -> auth.events: how long after Keycloak answers a token request the record
its event listener (infra/keycloak/provider) published is read from auth.events, on the real
broker with a real Keycloak (the cached built copy, `make keycloak`).

Sequential rounds, each a direct-grant login then a refresh of its token, each record waited
for before the next request: the delay of one event on an idle path, not under load.
Measured per record: the token response received -> the record read by a consumer, and the
event's own time in Keycloak (``occurred_at``) -> read.
Usage: python -m bench.keycloak_events ROUNDS"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson

from bench.common import bench_topics
from bench.latency import summary
from sessionwarden.contracts.codec import decode_auth_event
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.events import parse_ts
from sessionwarden.testing.keycloak import KeycloakServer, built_copy, provision, session_id_of
from sessionwarden.testing.waiting import wait_until


def run(rounds: int) -> dict[str, Any]:
    built = built_copy()
    with bench_topics("kc") as settings:
        server = KeycloakServer(
            bootstrap_servers=settings.kafka.bootstrap_servers, topic=settings.topics.input
        )
        server.start(built)
        try:
            rss = server.rss_mib()
            realm = provision(server.admin(), "bench", users={"ann": ("viewer",)})
            tokens = server.tokens(realm.name)
            collector = Collector(settings.kafka.bootstrap_servers, settings.topics.input)
            answered: list[float] = []
            from_event: list[float] = []
            try:
                for _ in range(rounds):
                    status, grant = tokens.password(realm.test_client, "ann", realm.password)
                    got = time.time()
                    assert status == 200, grant
                    sid = session_id_of(grant["access_token"])
                    for kind, request in (
                        ("login", None),
                        ("activity", lambda g=grant: tokens.refresh("tests", g["refresh_token"])),
                    ):
                        if request is not None:
                            status, body = request()
                            got = time.time()
                            assert status == 200, body
                        seen, doc = wait_until(
                            lambda kind=kind, sid=sid: collector.timed(type=kind, session_id=sid),
                            10,
                            f"the {kind} record",
                        )[0]
                        decode_auth_event(orjson.dumps(doc))
                        answered.append(seen - got)
                        from_event.append(seen - parse_ts(doc["occurred_at"]))
            finally:
                collector.close()
        finally:
            startup = server.startup_s
            server.stop()
    return {
        "keycloak": "26.7.3",
        "records": len(answered),
        "startup_s": startup,
        "rss_mib": rss,
        "after_response": summary(answered),
        "after_event_time": summary(from_event),
    }


def render_markdown(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return ["", "## Keycloak events", "", f"Skipped: {r['skipped']}"]
    a, e = r["after_response"], r["after_event_time"]
    return [
        "",
        "## Keycloak events -> auth.events",
        "",
        f"Keycloak {r['keycloak']} with the Sessionwarden event listener, {r['records']} records "
        f"(logins and refreshes, one at a time): read from auth.events p50 {a['p50_ms']:.0f} ms, "
        f"p99 {a['p99_ms']:.0f} ms after the token response; p50 {e['p50_ms']:.0f} ms, p99 "
        f"{e['p99_ms']:.0f} ms after the event's time in Keycloak. Start of the built copy "
        f"{r['startup_s']:.0f} s, RSS {r['rss_mib']:.0f} MiB.",
    ]


if __name__ == "__main__":
    print(orjson.dumps(run(int(sys.argv[1]))).decode())
