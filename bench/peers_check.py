"""The peers against the enforcer on a small seeded run: the same revocations, or no timing.

Seeded sessions of seven kinds (one user each) go to one input topic; the enforcer, the Kafka
Streams peer and the Quix Streams peer read it at once, each writing its own revocations topic.
Kinds: ``silent`` (expires with no further record: only a wall-clock timer can end it),
``rearmed`` (one activity, then silent: the timer must re-arm once), ``late`` (a request after
the idle deadline ends it at the deadline), ``logout``, ``late_logout`` (a logout after the
deadline), ``absolute`` (activity up to and past the absolute deadline) and ``alive``.

The Kafka Streams peer must produce exactly the enforcer's (session, reason, effective time in
ms). Quix Streams cannot fire on a silent session, so it must produce exactly the enforcer's
revocations of the other kinds, and none of the silent ones.
    python -m bench.peers_check SERVERS
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from typing import Any

import orjson

from bench.common import REPO, bench_topics, produce, producer
from bench.kstreams_peer import KStreamsProcess
from bench.quix_peer_run import QuixProcess
from schemas.codec import encode_dict
from tests.integration.harness import (
    Collector,
    EnforcerProcess,
    activity_doc,
    login_doc,
    logout_doc,
    parse_ts,
    wait_until,
)

POLICY = REPO / "bench/policies/check.toml"
PER_KIND = 10
SILENT = ("silent", "rearmed")
Revocation = tuple[str, str, int]


def seeded_run(t0: float, seed: int = 3) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The input records in order, and each session's kind."""
    rng = random.Random(seed)
    plans: dict[str, list[tuple[str, float]]] = {
        "silent": [("login:short", 0)],
        "rearmed": [("login:short", 0), ("activity", 5)],
        "late": [("login:short", 0), ("activity", 1), ("activity", 30)],
        "logout": [("login:low", 0), ("activity", 1), ("logout", 5)],
        "late_logout": [("login:short", 0), ("logout", 25)],
        "absolute": [("login:abs", 0), *[("activity", dt) for dt in (10, 20, 35, 45)]],
        "alive": [("login:low", 0), ("activity", 2)],
    }
    kinds: dict[str, str] = {}
    docs: list[dict[str, Any]] = []
    for kind, plan in plans.items():
        for i in range(PER_KIND):
            sid = f"chk-{kind}-{i}-{rng.getrandbits(32):08x}"
            user = f"u-{kind}-{i}"
            kinds[sid] = kind
            jitter = rng.uniform(0, 2)
            for step, dt in plan:
                t = t0 + jitter + dt
                if step.startswith("login:"):
                    docs.append(login_doc(sid, user, t, risk=step.split(":")[1]))
                elif step == "activity":
                    docs.append(activity_doc(sid, user, t))
                else:
                    docs.append(logout_doc(sid, user, t))
    return docs, kinds


def revocations(collector: Collector) -> set[Revocation]:
    return {
        (d["session_id"], d["reason"], round(parse_ts(d["effective_at"]) * 1000))
        for d in collector.docs()
        if d.get("type") == "revocation"
    }


def check(servers: str) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(bench_topics("check"))
        ks_out = stack.enter_context(bench_topics("check-ks")).topics.revocations
        qx_out = stack.enter_context(bench_topics("check-qx")).topics.revocations
        procs = [
            stack.enter_context(EnforcerProcess(s, policy=POLICY)),
            stack.enter_context(KStreamsProcess(servers, s.topics.input, ks_out, POLICY)),
            stack.enter_context(QuixProcess(servers, s.topics.input, qx_out, POLICY)),
        ]
        for proc in procs:
            proc.wait_assigned()
        t0 = time.time()
        docs, kinds = seeded_run(t0)
        p = producer(s)
        for doc in docs:
            produce(p, s.topics.input, encode_dict(doc), doc["user_id"].encode())
        p.flush(30)
        collectors = [Collector(servers, t) for t in (s.topics.revocations, ks_out, qx_out)]
        expected = sum(1 for k in kinds.values() if k != "alive")
        wait_until(
            lambda: (
                len(revocations(collectors[0])) >= expected
                and len(revocations(collectors[1])) >= expected
            ),
            120,
            "the revocations of the enforcer and the Kafka Streams peer",
        )
        time.sleep(3)  # let any spurious extra revocation arrive too
        ours, ks, qx = (revocations(c) for c in collectors)
        for c in collectors:
            c.close()
    ours_keyed = {r for r in ours if kinds[r[0]] not in SILENT}
    return {
        "sessions": len(kinds),
        "enforcer_revocations": len(ours),
        "kstreams_revocations": len(ks),
        "quix_revocations": len(qx),
        "kstreams_same": ks == ours,
        "quix_same_where_expressible": qx == ours_keyed,
        "quix_missed_silent": len(ours) - len(ours_keyed),
        "kstreams_diff": sorted(map(list, ks ^ ours))[:10],
        "quix_diff": sorted(map(list, qx ^ ours_keyed))[:10],
    }


def main() -> None:
    result = check(sys.argv[1])
    print(orjson.dumps(result).decode(), flush=True)
    if not (result["kstreams_same"] and result["quix_same_where_expressible"]):
        raise SystemExit(f"the peers disagree with the enforcer: {result}")


if __name__ == "__main__":
    main()
