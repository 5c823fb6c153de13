"""`sessionwarden dashboard`: the live web view of revocations and alerts."""

from __future__ import annotations

import argparse

from sessionwarden.cli.options import Subcommands

EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    dashboard = sub.add_parser("dashboard", help="the live web view of revocations and alerts")
    dashboard.add_argument("--port", type=int, help="port on 127.0.0.1 (default 8765)")
    dashboard.add_argument("--token-file", help="file holding the access token (default: random)")
    dashboard.add_argument(
        "--show-session-ids", action="store_true", help="raw session ids instead of salted hashes"
    )
    return dashboard


def run(args: argparse.Namespace) -> int:
    from sessionwarden.config.settings import load_settings
    from sessionwarden.ops.logs import bind_process, configure_logging
    from sessionwarden.web.dashboard.service import serve

    settings = load_settings(
        args.config, dashboard_port=args.port, dashboard_token_file=args.token_file
    )
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="dashboard")
    return serve(settings, settings.dashboard.token_file, args.show_session_ids)
