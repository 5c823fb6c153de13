"""`sessionwarden ssf receive`: Shared Signals (SSF 1.0) Security Event Tokens into auth.events."""

from __future__ import annotations

import argparse

from sessionwarden.cli.options import Subcommands

EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    ssf = sub.add_parser("ssf", help="OpenID Shared Signals (SSF 1.0, CAEP, RISC)")
    ssub = ssf.add_subparsers(dest="ssf_command", required=True, metavar="ROLE")
    receive = ssub.add_parser(
        "receive",
        help="take signals from identity providers: push (RFC 8935) and poll (RFC 8936)",
        description="Verifies the Security Event Tokens of the transmitters in "
        "ssf_receiver_transmitters (signature, issuer, audience, iat window, jti replay) and "
        "publishes them on auth.events as session_revoked, user_revoked and risk_change "
        "events (docs/SSF.md).",
    )
    receive.add_argument("--host", help="address of the push endpoint (default 127.0.0.1)")
    receive.add_argument("--port", type=int, help="its port (default 8791; 0: a free one)")
    return ssf


def run(args: argparse.Namespace) -> int:
    import asyncio

    from sessionwarden.config.settings import load_settings
    from sessionwarden.ops.logs import bind_process, configure_logging
    from sessionwarden.ssf.receiver.service import build
    from sessionwarden.ssf.receiver.service import run as serve

    settings = load_settings(args.config, ssf_receiver_host=args.host, ssf_receiver_port=args.port)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="ssf-receiver")
    return asyncio.run(serve(settings, build(settings)))
