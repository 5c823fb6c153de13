"""The gateway layer under load: deadline -> the first request refused by nginx (``auth_request``
to ``sessionwarden gate``), with the enforcer, the broker, the gate and Debian's nginx on this
machine, at the load of the revocation latency benchmark; then the gate's own time per request
(a kept-alive connection straight to the gate, at a fixed request rate).
Usage: python -m bench.gateway_latency SERVERS PREFIX RATE SECONDS CHECK_RATE CHECK_SECONDS"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import orjson

from bench.latency import POLICY, run_load, summary
from sessionwarden.config.settings import load_settings
from sessionwarden.gate.service import start_gate
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.nginx import Nginx
from sessionwarden.testing.services import EnforcerProcess
from sessionwarden.testing.waiting import wait_until

PROBE_EVERY_S = 0.01
COOKIE = "sessionwarden_session"
TARGET_P99_MS = 300


def _status(conn: HTTPConnection, sid: str) -> int:
    conn.request("GET", "/", headers={"Cookie": f"{COOKIE}={sid}", "X-Tenant": "acme"})
    response = conn.getresponse()
    response.read()
    return response.status


class Prober(threading.Thread):
    """Requests through nginx under every short session from its deadline on, every
    PROBE_EVERY_S, until nginx refuses it; the latency is the refusal's arrival minus the
    deadline."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.pending: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def add(self, sid: str, deadline: float) -> None:
        with self._lock:
            self.pending[sid] = deadline

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def run(self) -> None:
        conn = HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._halt.is_set():
            tick = time.monotonic()
            with self._lock:
                due = [(s, d) for s, d in self.pending.items() if d <= time.time()]
            for sid, deadline in due:
                if _status(conn, sid) == 401:
                    self.latency[sid] = time.time() - deadline
                    with self._lock:
                        del self.pending[sid]
            time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - tick)))
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
    settings = load_settings(
        bootstrap_servers=servers,
        topic_prefix=prefix,
        partitions=6,
        group_id=f"{prefix}enforcer",
        policy_file=POLICY,
        gate_port=0,
        gate_tenants="acme",
    )
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
            prober = Prober(nginx.port)
            collector = Collector(servers, settings.topics.revocations)
            prober.start()
            deadlines, achieved = run_load(settings, rate, seconds, prober.add)
            wait_until(lambda: len(prober.latency) >= len(deadlines), 60, "every refusal")
            prober.stop()
            wait_until(lambda: len(collector.docs()) >= len(deadlines), 60, "the revocations")
            seen = {d["session_id"]: t for t, d in collector.timed()
                    if d["session_id"] in deadlines}  # fmt: skip
            collector.close()
            result: dict[str, Any] = {
                "latency": {
                    "target_rate": rate,
                    "achieved_rate": achieved,
                    **summary(list(prober.latency.values())),
                    "kafka": summary([t - deadlines[sid] for sid, t in seen.items()]),
                    "beyond_kafka": summary(
                        [prober.latency[sid] + deadlines[sid] - t for sid, t in seen.items()]
                    ),
                },
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
