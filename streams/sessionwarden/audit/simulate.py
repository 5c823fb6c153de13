"""`sessionwarden simulate`: publish a plan on its schedule and write its ground truth."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO

import orjson
from tqdm import tqdm

from sessionwarden.audit.scenario import TENANT, Plan, build_plan, estimate_events
from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.kafka.security import KafkaSecurity
from sessionwarden.policy import Policy
from sessionwarden.sdk.publisher import AuthEventPublisher

BEHIND_WARNING_S = 0.5
FOREIGN = "consistent_random"  # librdkafka's default partitioner (CRC32), not murmur2


def truth_document(plan: Plan, policy: Policy) -> dict[str, Any]:
    return {
        "run_id": plan.run_id,
        "tenant": TENANT,
        "policy_version": policy.version,
        "sessions": {
            sid: {
                "user_id": t.user_id,
                "kind": t.kind,
                "reason": t.reason,
                "at": t.at,
                **({"at_max": t.at_max} if t.at_max > t.at else {}),
            }
            for sid, t in plan.truth.items()
        },
        "ended_session_used": plan.ended_session_used,
        "activity_after_revocation": plan.activity_after_revocation,
        "producer_delay_budget_s": plan.budget,
        "faults": dict(sorted(plan.faults.items())),
        "events": len(plan.events),
        "duplicates": plan.duplicates,
        "late": plan.late,
        "poison": plan.poison,
        "last_deadline": plan.last_deadline,
    }


def progress_bar(total: int, out: TextIO) -> tqdm[NoReturn]:
    """A one-line progress bar: redrawn at most 4 times a second on a terminal, every 5 s
    elsewhere (a log file)."""
    tty = out.isatty()
    return tqdm(
        total=total,
        file=out,
        unit="events",
        mininterval=0.25 if tty else 5.0,
        ascii=not tty,
        dynamic_ncols=tty,
    )


def publish_plan(
    settings: Settings,
    plan: Plan,
    out: TextIO = sys.stderr,
    stop: Callable[[], bool] = lambda: False,
) -> dict[str, int]:
    """Publish each planned event when its time comes; returns counts."""
    behind = 0
    sent = 0
    topic = settings.topics.input
    security = KafkaSecurity.from_settings(settings.kafka).librdkafka()
    with (
        progress_bar(len(plan.events), out) as progress,
        AuthEventPublisher(settings.kafka.bootstrap_servers, topic, **security) as pub,
        AuthEventPublisher(
            settings.kafka.bootstrap_servers, topic, partitioner=FOREIGN, **security
        ) as foreign,
    ):
        for ev in plan.events:
            if stop():
                break
            delay = ev.publish_at - time.time()
            if delay > 0:
                pub.flush()
                foreign.flush()
                time.sleep(delay)
            elif delay < -BEHIND_WARNING_S:
                behind += 1
            if ev.doc is None:
                pub.publish_raw(ev.key.encode(), ev.raw)
            else:
                producer = foreign if ev.foreign else pub
                producer.publish_raw(ev.doc["user_id"].encode(), encode_dict(ev.doc))
            sent += 1
            progress.update()
    if behind:
        out.write(
            f"warning: {behind} event(s) went out more than {BEHIND_WARNING_S}s late; "
            "lower --rate for a trustworthy ground truth\n"
        )
    return {"sent": sent, "behind": behind}


def simulate(
    settings: Settings,
    policy: Policy,
    users: int,
    seed: int,
    rate: float,
    truth_path: Path,
    out: TextIO = sys.stderr,
    stop: Callable[[], bool] = lambda: False,
    faults: frozenset[str] = frozenset(),
    budget: float = 0.0,
) -> Plan:
    spread = max(1.0, estimate_events(users) / rate)
    plan = build_plan(policy, users, seed, time.time() + 1.0, spread, faults, budget)
    truth_path.write_bytes(orjson.dumps(truth_document(plan, policy), option=orjson.OPT_INDENT_2))
    out.write(
        f"simulating run {plan.run_id}: {users} users, {len(plan.truth)} sessions, "
        f"{len(plan.events)} events over ~{spread:.0f}s; ground truth in {truth_path}\n"
    )
    if faults:
        touched = ", ".join(f"{name} {n}" for name, n in sorted(plan.faults.items()))
        out.write(f"fault modes {','.join(sorted(faults))}: {touched or 'no user drawn'}\n")
    counts = publish_plan(settings, plan, out, stop)
    out.write(
        f"published {counts['sent']} events ({plan.duplicates} duplicates, {plan.late} late, "
        f"{plan.poison} poison); last deadline in "
        f"{max(0.0, plan.last_deadline - time.time()):.1f}s\n"
    )
    return plan
