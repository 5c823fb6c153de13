"""`sessionwarden gate`: the forward-auth check for nginx, Traefik and Envoy."""

from __future__ import annotations

import argparse

from sessionwarden.cli.options import Subcommands

EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    gate = sub.add_parser(
        "gate",
        help="forward-auth check for gateways (nginx auth_request, Traefik, Envoy ext_authz)",
        description="Answers each gateway subrequest from the revocation topic: 200 for a "
        "session not revoked, 401/403 with the reason, 503 when the gate is stale. Sources, "
        "tenants and JWT keys come from the gate_* settings (docs/GATEWAY.md).",
    )
    gate.add_argument("--host", help="address to bind (default 127.0.0.1)")
    gate.add_argument("--port", type=int, help="port (default 8790; 0: a free one)")
    return gate


def run(args: argparse.Namespace) -> int:
    from sessionwarden.config.settings import load_settings
    from sessionwarden.gate.service import serve
    from sessionwarden.ops.logs import bind_process, configure_logging

    settings = load_settings(args.config, gate_host=args.host, gate_port=args.port)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="gate")
    return serve(settings)
