"""The gateway layer under load: deadline -> the first request refused by nginx (``auth_request``
to ``sessionwarden gate``), with the enforcer, the broker, the gate and Debian's nginx on this
machine, at the load of the revocation latency benchmark; then the gate's own time per request
(a kept-alive connection straight to the gate, at a fixed request rate).
Usage: python -m bench.gateway_latency SERVERS PREFIX RATE SECONDS CHECK_RATE CHECK_SECONDS"""

from __future__ import annotations

import sys
import tempfile
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import orjson

from bench.common import Prober, child_settings
from bench.latency import POLICY, probed_latency, summary
from sessionwarden.gate.service import start_gate
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.testing.nginx import Nginx
from sessionwarden.testing.services import EnforcerProcess

COOKIE = "sessionwarden_session"
TARGET_P99_MS = 300


def _status(conn: HTTPConnection, sid: str) -> int:
    conn.request("GET", "/", headers={"Cookie": f"{COOKIE}={sid}", "X-Tenant": "acme"})
    response = conn.getresponse()
    response.read()
    return response.status


class NginxProber(Prober):
    """Requests through nginx under every short session until nginx refuses it (401)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def run(self) -> None:
        conn = HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.probe(lambda sid: _status(conn, sid) == 401)
        conn.close()


def gate_time(port: int, rate: float, seconds: float) -> dict[str, Any]:
    """Round trips to the gate on one kept-alive connection, started at ``rate`` per second."""
    conn = HTTPConnection("127.0.0.1", port, timeout=5)
    took: list[float] = []
    statuses: dict[str, int] = {}
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        due = start + n / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        t = time.perf_counter()
        status = _status(conn, f"check-{n % 1000}")
        took.append(time.perf_counter() - t)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        n += 1
    conn.close()
    return {"rate": rate, "achieved_rate": n / (time.monotonic() - start),
            "statuses": statuses, **summary(took)}  # fmt: skip


def render_markdown(gw: dict[str, Any]) -> list[str]:
    """The report's section."""
    lat, own = gw["latency"], gw["gate_time"]
    kafka, beyond = lat["kafka"], lat["beyond_kafka"]
    verdict = "met" if lat["p99_ms"] <= TARGET_P99_MS else "missed"
    return [
        "",
        "## Gateway layer (nginx auth_request and sessionwarden gate)",
        "",
        f"Deadline -> the first request refused by nginx ({gw['nginx']}), at "
        f"{lat['achieved_rate']:,.0f} events/s: p50 {lat['p50_ms']:.0f} ms, "
        f"p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms over {lat['samples']} sessions "
        f"(target p99 <= {TARGET_P99_MS} ms, the database layer's: {verdict}); the revocation "
        f"read from Kafka by a separate consumer: p50 {kafka['p50_ms']:.0f} ms, "
        f"p99 {kafka['p99_ms']:.0f} ms; the refusal at nginx minus that read (negative: the "
        f"gate's listener read it first): p50 {beyond['p50_ms']:.0f} ms, "
        f"p99 {beyond['p99_ms']:.0f} ms.",
        "",
        f"The gate's own time per request at {own['rate']:,.0f} requests/s (one kept-alive "
        f"connection, loopback): p50 {own['p50_ms']:.2f} ms, p99 {own['p99_ms']:.2f} ms, "
        f"max {own['max_ms']:.2f} ms over {own['samples']:,} requests.",
    ]


def main() -> None:
    servers, prefix = sys.argv[1], sys.argv[2]
    rate, seconds = float(sys.argv[3]), float(sys.argv[4])
    check_rate, check_seconds = float(sys.argv[5]), float(sys.argv[6])
    settings = child_settings(servers, prefix, policy_file=POLICY, gate_port=0, gate_tenants="acme")
    listener = RevocationListener.from_settings(settings, staleness_budget_s=10.0)
    with (
        EnforcerProcess(settings, policy=Path(POLICY), SESSIONWARDEN_LOG_LEVEL="INFO") as enf,
        tempfile.TemporaryDirectory() as tmp,
    ):
        enf.wait_assigned()
        listener.start()
        assert listener.wait_ready(30), "the gate's listener did not catch up"
        gate = start_gate(settings, listener)
        nginx = Nginx(Path(tmp) / "nginx", gate.port)
        try:
            result: dict[str, Any] = {
                "latency": probed_latency(settings, NginxProber(nginx.port), rate, seconds),
                "gate_time": gate_time(gate.port, check_rate, check_seconds),
                "nginx": "Debian's nginx, one process, loopback",
            }
        finally:
            nginx.close()
            gate.close()
            listener.close()
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
