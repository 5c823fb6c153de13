"""The Shared Signals layer under load: deadline -> the CAEP session-revoked SET accepted (202)
by a push receiver (RFC 8935), with the enforcer, the broker, `sessionwarden ssf transmit` and
the receiver on this machine, at the load of the revocation latency benchmark.
Usage: python -m bench.ssf_latency SERVERS PREFIX RATE SECONDS"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench.common import child_settings
from bench.latency import POLICY, kafka_reads, layer_latency, run_load
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ssf.tokens import read_unverified
from sessionwarden.ssf.vocabulary import SESSION_REVOKED
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.nginx import free_port
from sessionwarden.testing.services import EnforcerProcess, TransmitterProcess
from sessionwarden.testing.ssf import PushReceiver, SsfClient, write_key_and_tokens
from sessionwarden.testing.waiting import wait_until

TARGET_P99_MS = 300
SALT = "test-salt"  # the services' log_salt (testing.services.service_env)


def render_markdown(ssf: dict[str, Any]) -> list[str]:
    """The report's section."""
    lat = ssf["latency"]
    kafka, beyond = lat["kafka"], lat["beyond_kafka"]
    verdict = "met" if lat["p99_ms"] <= TARGET_P99_MS else "missed"
    return [
        "",
        "## Shared Signals layer (sessionwarden ssf transmit, push)",
        "",
        f"Deadline -> the session-revoked SET accepted by a push receiver (RS256, loopback), "
        f"at {lat['achieved_rate']:,.0f} events/s: p50 {lat['p50_ms']:.0f} ms, "
        f"p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms over {lat['samples']} sessions "
        f"(target p99 <= {TARGET_P99_MS} ms: {verdict}); the revocation read from Kafka by a "
        f"separate consumer: p50 {kafka['p50_ms']:.0f} ms, p99 {kafka['p99_ms']:.0f} ms; the "
        f"push's arrival minus that read: p50 {beyond['p50_ms']:.0f} ms, "
        f"p99 {beyond['p99_ms']:.0f} ms.",
    ]


def main() -> None:
    servers, prefix = sys.argv[1], sys.argv[2]
    rate, seconds = float(sys.argv[3]), float(sys.argv[4])
    settings = child_settings(servers, prefix, policy_file=POLICY)
    hasher = SessionHasher(SALT)
    receiver = PushReceiver()
    with tempfile.TemporaryDirectory() as tmp:
        key_file, token_file, token = write_key_and_tokens(Path(tmp))
        tx = TransmitterProcess(
            settings, port=free_port(), state_dir=Path(tmp) / "state", key_file=key_file,
            token_file=token_file, policy=Path(POLICY),
        )  # fmt: skip
        with (
            EnforcerProcess(settings, policy=Path(POLICY), SESSIONWARDEN_LOG_LEVEL="INFO") as enf,
            tx,
        ):
            enf.wait_assigned()
            tx.wait_assigned(60)
            SsfClient(tx.base, token).create_push(receiver.url("/events"), [SESSION_REVOKED])
            collector = Collector(servers, settings.topics.revocations)
            deadlines, achieved = run_load(settings, rate, seconds)
            by_hash = {hasher(sid): sid for sid in deadlines}

            def arrived() -> dict[str, float]:
                found = {}
                for push in receiver.accepted("/events"):
                    sid = by_hash.get(read_unverified(push.token)[1]["sub_id"]["session"]["id"])
                    if sid is not None:
                        found.setdefault(sid, push.at)
                return found

            wait_until(lambda: len(arrived()) >= len(deadlines), 120, "every pushed SET")
            seen = kafka_reads(collector, deadlines)
            collector.close()
            push_latency = {sid: at - deadlines[sid] for sid, at in arrived().items()}
            result = {
                "latency": layer_latency(rate, achieved, deadlines, push_latency, seen),
                "receiver": "a threaded http.server push endpoint answering 202, loopback",
            }
    receiver.close()
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
