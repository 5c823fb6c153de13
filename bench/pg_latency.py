"""The database layer under load: deadline -> a query under that session refused by PostgreSQL,
with the enforcer, the broker, the sink and a PostgreSQL server (fsync on) on this machine, at
the load of the revocation latency benchmark; then the sink's throughput through a mass expiry,
and draining the same revocations into an empty database.
Usage: python -m bench.pg_latency SERVERS PREFIX RATE SECONDS MASS_SESSIONS"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.common import Prober, child_settings, produce, producer
from bench.latency import POLICY, probed_latency
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.testing.events import login_doc
from sessionwarden.testing.pg_cluster import TempCluster
from sessionwarden.testing.pg_sandbox import Sandbox, refused
from sessionwarden.testing.services import EnforcerProcess, SinkProcess
from sessionwarden.testing.waiting import wait_until

TARGET_P99_MS = 300


class DatabaseProber(Prober):
    """Queries under every short session until the database refuses it."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn

    def run(self) -> None:
        while not self.halted:
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    self.probe(lambda sid: _refused(conn, sid))
            except psycopg.OperationalError:
                # The sink terminated this backend: it was caught between two statements of a
                # session it was cutting off. Not counted; probe again on a new connection.
                continue


def _refused(conn: psycopg.Connection[Any], sid: str) -> bool:
    try:
        return refused(conn, "acme", sid)
    except psycopg.errors.QueryCanceled:
        return False  # cut off by the sink: not counted, the next probe must meet the guard


def _count(dsn: str, like: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sessionwarden.revoked_sessions WHERE session_id LIKE %s", (like,)
        ).fetchone()
    return int(row[0]) if row else 0


def _write_rate(dsn: str, like: str) -> dict[str, float]:
    """Rows/s from the sink's own commits: rows of every batch after the first, over the time
    from the first batch to the last (revoked_at is each batch transaction's start)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE revoked_at > first), count(DISTINCT revoked_at),"
            "       extract(epoch FROM max(last) - max(first))::float8"
            "  FROM sessionwarden.revoked_sessions,"
            "       (SELECT min(revoked_at) AS first, max(revoked_at) AS last"
            "          FROM sessionwarden.revoked_sessions WHERE session_id LIKE %s) AS span"
            " WHERE session_id LIKE %s",
            (like, like),
        ).fetchone()
    assert row is not None
    after_first, batches, seconds = int(row[0]), int(row[1]), float(row[2] or 0.0)
    return {
        "batches": batches,
        "seconds": seconds,
        "rate": after_first / seconds if seconds > 0 else float("nan"),
    }


def mass_expiry(settings: Settings, box: Sandbox, sessions: int) -> dict[str, Any]:
    """`sessions` logins at once, all idle-expiring 2 s later: rows/s while the sink takes in
    their revocations (first row to last)."""
    p = producer(settings)
    t0 = time.time()
    for i in range(sessions):
        doc = login_doc(f"mass-{i}", f"mu{i}", t0, risk="short")
        produce(p, settings.topics.input, encode_dict(doc), doc["user_id"].encode())
    p.flush(120)
    wait_until(
        lambda: _count(box.sink_dsn, "mass-%") >= sessions,
        600,
        "every mass revocation in the database",
    )
    return {
        "sessions": sessions,
        "since_logins_s": time.time() - t0,
        **_write_rate(box.sink_dsn, "mass-%"),
    }


def drain(settings: Settings, admin_dsn: str, rows: int) -> dict[str, Any]:
    """A fresh sink into an empty database reads the whole revocation topic: its own rate."""
    box = Sandbox.create(admin_dsn, f"sw_drain_{uuid.uuid4().hex[:8]}")
    try:
        with SinkProcess(
            settings,
            box.sink_dsn,
            Path(POLICY),
            SESSIONWARDEN_PG_SINK_GROUP_ID=f"drain-{uuid.uuid4().hex[:6]}",
        ) as sink:
            sink.wait_assigned()
            wait_until(lambda: _count(box.sink_dsn, "%") >= rows, 600, "the drain")
        return {"rows": rows, **_write_rate(box.sink_dsn, "%")}
    finally:
        box.drop()


def render_markdown(pg: dict[str, Any]) -> list[str]:
    """The report's section."""
    lat, mass, drained = pg["latency"], pg["mass_expiry"], pg["drain"]
    verdict = "met" if lat["p99_ms"] <= TARGET_P99_MS else "missed"
    return [
        "",
        "## Database layer (PostgreSQL sink and row-level guard)",
        "",
        f"Deadline -> a query under the session refused by PostgreSQL ({pg['postgres']}), at "
        f"{lat['achieved_rate']:,.0f} events/s: p50 {lat['p50_ms']:.0f} ms, "
        f"p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms over {lat['samples']} sessions "
        f"(target p99 <= {TARGET_P99_MS} ms: {verdict}); the revocation on Kafka alone: "
        f"p50 {lat['kafka']['p50_ms']:.0f} ms, p99 {lat['kafka']['p99_ms']:.0f} ms; from the "
        f"revocation on Kafka to the refusal: p50 {lat['beyond_kafka']['p50_ms']:.0f} ms, "
        f"p99 {lat['beyond_kafka']['p99_ms']:.0f} ms.",
        "",
        f"Mass expiry of {mass['sessions']:,} sessions: the sink wrote {mass['rate']:,.0f} "
        f"revocations/s ({mass['batches']} transactions over {mass['seconds']:.1f} s; all in the "
        f"database {mass['since_logins_s']:.1f} s after the logins). Draining the same "
        f"{drained['rows']:,} revocations into an empty database: {drained['rate']:,.0f}/s.",
    ]


def main() -> None:
    servers, prefix = sys.argv[1], sys.argv[2]
    rate, seconds, mass = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    settings = child_settings(servers, prefix)
    with TempCluster(durable=True) as cluster:
        box = Sandbox.create(cluster.dsn(), f"sw_bench_{uuid.uuid4().hex[:8]}")
        with (
            EnforcerProcess(settings, policy=Path(POLICY), SESSIONWARDEN_LOG_LEVEL="INFO") as enf,
            SinkProcess(settings, box.sink_dsn, Path(POLICY)) as sink,
        ):
            enf.wait_assigned()
            sink.wait_assigned()
            result = {
                "latency": probed_latency(settings, DatabaseProber(box.app_dsn), rate, seconds)
            }
            result["mass_expiry"] = mass_expiry(settings, box, mass)
        total = _count(box.sink_dsn, "%")
        result["drain"] = drain(settings, cluster.dsn(), total)
        result["postgres"] = "15, fsync on, synchronous_commit on, same machine"
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
