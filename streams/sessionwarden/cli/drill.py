"""The `sessionwarden drill` subcommand: its options and its exit status (1 on any bypass,
false cut-off or unproven session)."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from sessionwarden.cli.options import Subcommands

EXTRA = "audit"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    drill = sub.add_parser(
        "drill", help="drive sessions past their deadlines through every layer; audit refusals"
    )
    drill.add_argument("--sessions", type=int, default=20, help="sessions (default 20)")
    drill.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    drill.add_argument("--tolerance", type=float, default=1.0,
                       help="seconds past a deadline a success is not a bypass (1)")  # fmt: skip
    drill.add_argument("--rate", type=float, default=2.0, help="sessions started per second (2)")
    drill.add_argument("--pg-sessions", type=int, default=10,
                       help="sessions also driven through PostgreSQL (10; 0: none)")  # fmt: skip
    drill.add_argument("--browser-sessions", type=int, default=2,
                       help="sessions also in Chromium, two tabs each (2; 0: none)")  # fmt: skip
    drill.add_argument("--policy", help="policy TOML (default: the shipped drill policy)")
    drill.add_argument("--url", help="drive this running service's HTTP contract instead of "
                       "starting the example service (docs/DRILL.md)")  # fmt: skip
    drill.add_argument("--path", default="/api/data", help="the protected path (/api/data)")
    drill.add_argument("--no-enforcer", action="store_true",
                       help="use the enforcer already running on the settings' topics")  # fmt: skip
    drill.add_argument("--pg-admin-dsn", help="a PostgreSQL superuser DSN to make the drill's "
                       "sandbox database on (default: a throwaway cluster)")  # fmt: skip
    drill.add_argument("--gateway", action="store_true",
                       help="also drive nginx asking the gate (the gateway case)")  # fmt: skip
    drill.add_argument("--ssf", action="store_true",
                       help="also drive relying parties told only by the SSF transmitter, "
                       "one pushed to, one polling (the ssf cases)")  # fmt: skip
    drill.add_argument("--mass-sessions", type=int, default=10_000,
                       help="then revoke this many sessions of the tenant with one command "
                       "and time the commit and each layer's refusals (0: none)")  # fmt: skip
    drill.add_argument("--idp-sessions", type=int, default=0,
                       help="sessions born in Keycloak, ended there by `sessionwarden idp "
                       "keycloak` (0: none)")  # fmt: skip
    drill.add_argument("--keycloak-url", help="the idp layer's Keycloak (admin login: "
                       "KC_BOOTSTRAP_ADMIN_USERNAME / KC_BOOTSTRAP_ADMIN_PASSWORD); default: "
                       "one the drill starts from `make keycloak`'s copy")  # fmt: skip
    drill.add_argument("--out", default=".drill", help="report directory (default .drill)")
    weak = drill.add_argument_group("deliberate weakenings (the drill must then fail)")
    weak.add_argument("--unprotected", action="append", default=[], metavar="PATH",
                      help="leave this example-service path outside the middleware")  # fmt: skip
    weak.add_argument("--gateway-unprotected", action="append", default=[], metavar="PATH",
                      help="nginx serves this path without the gate (--gateway)")  # fmt: skip
    weak.add_argument("--no-sink", action="store_true", help="do not start the PostgreSQL sink")
    weak.add_argument("--no-page-script", action="store_true",
                      help="serve the page without the browser script")  # fmt: skip
    weak.add_argument("--no-idp-actuator", action="store_true",
                      help="do not start the idp actuator (--idp-sessions)")  # fmt: skip
    weak.add_argument("--no-ssf-transmitter", action="store_true",
                      help="do not run the SSF transmitter (--ssf)")  # fmt: skip
    return drill


def run(args: argparse.Namespace) -> int:
    from sessionwarden.audit.drill.options import DRILL_POLICY, DrillOptions
    from sessionwarden.audit.drill.report import table
    from sessionwarden.audit.drill.runner import run_drill
    from sessionwarden.config.settings import load_settings
    from sessionwarden.ops.logs import configure_logging
    from sessionwarden.policy import load_policy

    overrides: dict[str, Any] = {"policy_file": args.policy or DRILL_POLICY}
    if not args.no_enforcer:  # a drill's own topics, so nothing else's traffic is audited
        overrides["topic_prefix"] = f"drill-{secrets.token_hex(4)}."
    settings = load_settings(args.config, **overrides)
    configure_logging("WARNING", "text")
    assert settings.policy_file is not None
    policy = load_policy(settings.policy_file)
    options = DrillOptions(
        sessions=args.sessions, seed=args.seed, tolerance_s=args.tolerance, rate=args.rate,
        pg_sessions=args.pg_sessions, browser_sessions=args.browser_sessions, url=args.url,
        path=args.path, start_enforcer=not args.no_enforcer, start_sink=not args.no_sink,
        unprotected=tuple(args.unprotected), page_script=not args.no_page_script,
        workdir=Path(args.out), pg_admin_dsn=args.pg_admin_dsn, own_topics=not args.no_enforcer,
        gateway=args.gateway or bool(args.gateway_unprotected),
        gateway_unprotected=tuple(args.gateway_unprotected), mass_sessions=args.mass_sessions,
        idp_sessions=args.idp_sessions,
        keycloak_url=args.keycloak_url, start_idp_actuator=not args.no_idp_actuator,
        ssf=args.ssf or args.no_ssf_transmitter, ssf_transmitter=not args.no_ssf_transmitter,
    )  # fmt: skip
    result, doc = run_drill(settings, policy, options, say=lambda s: print(s, file=sys.stderr))
    print(table(result))
    closes = doc["websocket_close"]
    if closes["count"]:
        print(f"WebSocket close after the revocation was read (ms, {closes['count']} sockets): "
              f"p50 {closes['p50_ms']:.0f}, p99 {closes['p99_ms']:.0f}, "
              f"max {closes['max_ms']:.0f}")  # fmt: skip
    if "mass_revocation" in doc:
        print(doc["mass_revocation"]["line"])
    print(f"report: {options.workdir}/drill.json, drill.txt, drill.png", file=sys.stderr)
    return 0 if result.passed else 1
