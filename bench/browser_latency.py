"""Deadline -> page logged out in a real browser: the UI layer's share of revocation latency.

    .venv/bin/python -m bench.browser_latency [--sessions 60] [--wave 10] [--idle 3]

A real enforcer runs as ``sessionwarden enforce`` in a subprocess; the example service
(listener + push hub + uvicorn) runs in this process; Debian's Chromium, driven by Playwright,
holds one page per session, each in its own browser context with its session cookie and its
revocation stream open. Sessions go in waves of ``--wave`` open pages; the logins of a wave are
published one by one over a second, so their idle deadlines are staggered. For each session:
deadline = the revocation's ``effective_at``; ``is_revoked`` = when the service's listener
applied it; logged out = the moment the page's script had cleared the page and shown the reason
(``Date.now()`` in the page: one host, one clock).

Human-readable lines go to stderr; the result is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench.common import bench_topics
from bench.propagation_latency import POLICY, enforcer, login, say
from sessionwarden.config.settings import Settings
from sessionwarden.ops.stats import percentiles
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.browser import chromium, open_as, wait_ended
from sessionwarden.testing.example import ExampleService


def wave(
    browser: Any, service: ExampleService, settings: Settings, size: int, idle: float
) -> list[dict[str, float]]:
    """``size`` sessions: pages open first, then the logins, then wait for every page to end."""
    contexts = [browser.new_context() for _ in range(size)]
    try:
        sids = [service.issue() for _ in range(size)]  # the example accepts only its own
        pages = {sid: open_as(c, service.url, sid) for sid, c in zip(sids, contexts, strict=True)}
        with AuthEventPublisher(
            settings.kafka.bootstrap_servers, settings.topics.input
        ) as publisher:
            for sid in sids:
                publisher.publish(login(sid, f"user-{sid}", time.time()))
                publisher.flush()
                time.sleep(1.0 / size)
        # The page stamps the moment itself; waiting in the browser (not polling from here)
        # keeps this process, which also runs the service, quiet.
        ended: dict[str, Any] = {}
        until = time.monotonic() + idle + 30
        for sid, page in pages.items():
            with contextlib.suppress(PlaywrightTimeout):
                ended[sid] = wait_ended(page, timeout=max(0.1, until - time.monotonic()))
        samples = []
        for sid, state in ended.items():
            record = service.revocations.get(sid)
            if record is None:
                continue
            at = record.effective_at.timestamp()
            samples.append({
                "logged_out_ms": (state["at"] / 1000 - at) * 1000,
                "is_revoked_ms": (service.applied[sid] - at) * 1000,
                "via_stream": float(state["via"] == "stream"),
            })  # fmt: skip
        return samples
    finally:
        for context in contexts:
            context.close()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        policy_file = Path(tmp) / "policy.toml"
        policy_file.write_text(POLICY.format(idle=args.idle))
        with bench_topics("browser", args.partitions, args.servers, policy_file) as settings:
            child = enforcer(settings)
            try:
                child.wait_for("partitions assigned", 120)
                with (
                    ExampleService(settings, policy_file, tenant="bench") as service,
                    chromium() as browser,
                ):
                    while len(samples) < args.sessions:
                        size = min(args.wave, args.sessions - len(samples))
                        say(f"wave of {size} pages ({len(samples)}/{args.sessions} measured)")
                        got = wave(browser, service, settings, size, args.idle)
                        if not got:
                            raise SystemExit("no page of the wave was logged out")
                        samples += got
            finally:
                child.stop()
    return summarise(args, samples)


def summarise(args: argparse.Namespace, samples: list[dict[str, float]]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "bench": "browser_latency",
        "sessions": len(samples),
        "idle_s": args.idle,
        "wave": args.wave,
        "via_stream": int(sum(s["via_stream"] for s in samples)),
    }
    for name, key in (("", "logged_out_ms"), ("is_revoked_", "is_revoked_ms")):
        values = [s[key] for s in samples]
        for pct, value in zip((50, 90, 99), percentiles(values, 50, 90, 99), strict=True):
            result[f"{name}p{pct}_ms"] = round(value, 1)
        result[f"{name}max_ms"] = round(max(values), 1)
    browser_share = [s["logged_out_ms"] - s["is_revoked_ms"] for s in samples]
    push_p50, push_p99 = percentiles(browser_share, 50, 99)
    result["push_p50_ms"] = round(push_p50, 1)
    result["push_p99_ms"] = round(push_p99, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--wave", type=int, default=10, help="pages open at once")
    parser.add_argument("--idle", type=int, default=3, help="idle timeout in seconds")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    result = measure(args)
    say(
        f"deadline -> page logged out over {result['sessions']} sessions: p50 {result['p50_ms']}"
        f" ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms (deadline -> is_revoked in "
        f"the service: p50 {result['is_revoked_p50_ms']} ms, p99 {result['is_revoked_p99_ms']} ms)"
    )
    print(orjson.dumps(result).decode(), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
