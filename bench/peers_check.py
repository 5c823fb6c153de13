"""The peers against the enforcer on a small seeded run: the same revocations, or no timing.

Seeded sessions of seven kinds (one user each) go to one input topic, each record at its own
time; the enforcer, the Kafka
Streams peer and the Quix Streams peer read it at once, each writing its own revocations topic.
Kinds: ``silent`` (expires with no further record: only a wall-clock timer can end it),
``rearmed`` (one activity, then silent: the timer must re-arm once), ``late`` (a request after
the idle deadline ends it at the deadline), ``logout``, ``late_logout`` (a logout after the
deadline), ``absolute`` (activity up to and past the absolute deadline) and ``alive``.

The Kafka Streams peer must produce exactly the enforcer's (session, reason, effective time in
ms). Quix Streams cannot fire on a silent session, so it must produce exactly the enforcer's
revocations of the other kinds, and none of the silent ones.

The Kafka Streams peer fires deadlines on its wall clock whether or not it has read the input
made before them (the enforcer waits until its input is read past a deadline), so a record it
reads too late loses the race to its timer, and a record the producer appends too late loses the
race to the enforcer's. Every record that moves a deadline therefore comes at least 8 s before
the deadline it moves (bench/policies/check.toml), and the run starts only once the enforcer and
Kafka Streams have each revoked one warm-up session (clients connected, first transactions done,
code warmed up: a cold start on a loaded machine is slow).
    python -m bench.peers_check SERVERS
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from typing import Any

import orjson
from confluent_kafka import Producer

from bench.common import REPO, bench_topics, produce, producer
from bench.kstreams_peer import KStreamsProcess
from bench.quix_peer_run import QuixProcess
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.events import activity_doc, login_doc, logout_doc, parse_ts
from sessionwarden.testing.services import EnforcerProcess
from sessionwarden.testing.waiting import wait_until

POLICY = REPO / "bench/policies/check.toml"
PER_KIND = 10
SILENT = ("silent", "rearmed")
WARM_UP = "chk-warm-up"
Revocation = tuple[str, str, int]


def seeded_run(seed: int = 3) -> tuple[list[tuple[float, str, str, str]], dict[str, str]]:
    """The input records as (seconds from the start, step, session, user) in time order, and
    each session's kind. Records are produced at their own time (the enforcer judges an event
    on the earlier of its timestamp and its arrival, so none may be stamped ahead)."""
    rng = random.Random(seed)
    plans: dict[str, list[tuple[str, float]]] = {
        "silent": [("login:short", 0)],
        "rearmed": [("login:short", 0), ("activity", 2)],
        "late": [("login:short", 0), ("activity", 1), ("activity", 13)],
        "logout": [("login:low", 0), ("activity", 1), ("logout", 3)],
        "late_logout": [("login:short", 0), ("logout", 12)],
        "absolute": [("login:abs", 0), *[("activity", dt) for dt in (4, 8, 12, 16)]],
        "alive": [("login:low", 0), ("activity", 2)],
    }
    kinds: dict[str, str] = {}
    steps: list[tuple[float, str, str, str]] = []
    for kind, plan in plans.items():
        for i in range(PER_KIND):
            sid = f"chk-{kind}-{i}-{rng.getrandbits(32):08x}"
            kinds[sid] = kind
            jitter = rng.uniform(0, 1)
            steps += [(jitter + dt, step, sid, f"u-{kind}-{i}") for step, dt in plan]
    return sorted(steps), kinds


def whole_ms(t: float) -> float:
    """``t`` down to its millisecond. The input topic stamps each record with its broker append
    time in whole milliseconds, and the enforcer judges an event on the earlier of that and its
    ``occurred_at``: an event stamped 0.7 ms into the millisecond its record was appended in
    would count 0.7 ms early for the enforcer alone, and round to another millisecond than the
    peers' revocation. Stamped at a whole millisecond, it is never after its append time."""
    return math.floor(t * 1000) / 1000


def produce_in_time(p: Producer, s: Settings, steps: list[tuple[float, str, str, str]]) -> None:
    t0 = time.time()
    for dt, step, sid, user in steps:
        time.sleep(max(0.0, t0 + dt - time.time()))
        t = whole_ms(t0 + dt)
        if step.startswith("login:"):
            doc = login_doc(sid, user, t, risk=step.split(":")[1])
        elif step == "activity":
            doc = activity_doc(sid, user, t)
        else:
            doc = logout_doc(sid, user, t)
        produce(p, s.topics.input, encode_dict(doc), user.encode())
        p.poll(0)
    p.flush(30)


def revocations(collector: Collector) -> set[Revocation]:
    return {
        (d["session_id"], d["reason"], round(parse_ts(d["effective_at"]) * 1000))
        for d in collector.docs()
        if d.get("type") == "revocation" and d["session_id"] != WARM_UP
    }


def warm_up(p: Producer, s: Settings, timed: list[Collector]) -> None:
    """One session logged in and out, its revocation awaited from the systems with timers (the
    enforcer and Kafka Streams; Quix Streams judges on event times alone, so how soon it reads
    cannot change what it revokes)."""
    t = time.time()
    for doc in (login_doc(WARM_UP, "u-warm-up", t), logout_doc(WARM_UP, "u-warm-up", t)):
        produce(p, s.topics.input, encode_dict(doc), b"u-warm-up")
    p.flush(30)
    wait_until(
        lambda: all(c.docs(session_id=WARM_UP) for c in timed),
        120,
        "the warm-up session's revocation from the enforcer and Kafka Streams",
    )


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
        collectors = [Collector(servers, t) for t in (s.topics.revocations, ks_out, qx_out)]
        p = producer(s)
        warm_up(p, s, collectors[:2])
        steps, kinds = seeded_run()
        produce_in_time(p, s, steps)
        expected = sum(1 for k in kinds.values() if k != "alive")
        expressible = sum(1 for k in kinds.values() if k not in (*SILENT, "alive"))
        wait_until(  # Quix Streams commits (and so shows its output) every 5 s
            lambda: (
                len(revocations(collectors[0])) >= expected
                and len(revocations(collectors[1])) >= expected
                and len(revocations(collectors[2])) >= expressible
            ),
            120,
            "the revocations of the enforcer and both peers",
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
