"""`sessionwarden ssf transmit`, `ssf token` and `ssf receive`: the Shared Signals (SSF 1.0)
transmitter of revocations and the receiver of signals from identity providers."""

from __future__ import annotations

import argparse

from sessionwarden.cli.options import Subcommands

EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    ssf = sub.add_parser(
        "ssf", help="OpenID Shared Signals (SSF 1.0, CAEP 1.0, RISC 1.0): signals out and in"
    )
    ssub = ssf.add_subparsers(dest="ssf_command", required=True, metavar="ROLE")
    tx = ssub.add_parser(
        "transmit",
        help="the SSF transmitter: push (RFC 8935) and poll (RFC 8936) streams",
        description="Serves /.well-known/ssf-configuration, the JWKS, the stream management "
        "API (bearer tokens with ssf.manage / ssf.read) and delivers each revocation as a "
        "signed CAEP session-revoked SET to every stream (docs/SSF.md). Settings: ssf_tx_*.",
    )
    tx.add_argument("--host", help="address to bind (default 127.0.0.1)")
    tx.add_argument("--port", type=int, help="port (default 8792; 0: a free one)")
    token = ssub.add_parser(
        "token",
        help="make a receiver's bearer token and its line for ssf_tx_token_file",
        description="Prints a new random token (give it to the receiver) and, on stderr, the "
        "line to append to the token file (its hash only).",
    )
    token.add_argument("--client", required=True, help="the receiver's client id")
    token.add_argument(
        "--scopes", default="ssf.manage,ssf.read", help="comma separated (ssf.manage, ssf.read)"
    )
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
    if args.ssf_command == "token":
        return _token(args.client, args.scopes)
    if args.ssf_command == "receive":
        return _receive(args)
    from sessionwarden.config.settings import load_settings
    from sessionwarden.ops.logs import bind_process, configure_logging
    from sessionwarden.ssf.transmitter.service import serve

    settings = load_settings(args.config, ssf_tx_host=args.host, ssf_tx_port=args.port)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="ssf-transmitter")
    return serve(settings)


def _receive(args: argparse.Namespace) -> int:
    import asyncio

    from sessionwarden.config.settings import load_settings
    from sessionwarden.ops.logs import bind_process, configure_logging
    from sessionwarden.ssf.receiver.service import build
    from sessionwarden.ssf.receiver.service import run as serve

    settings = load_settings(args.config, ssf_receiver_host=args.host, ssf_receiver_port=args.port)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="ssf-receiver")
    return asyncio.run(serve(settings, build(settings)))


def _token(client: str, scopes: str) -> int:
    import secrets
    import sys

    from sessionwarden.errors import ConfigError
    from sessionwarden.ssf.transmitter.auth import parse_token_file, token_hash

    token = secrets.token_urlsafe(32)
    line = f"{client} {token_hash(token)} {scopes}"
    try:
        parse_token_file(line, where="the token line")
    except ConfigError as exc:
        print(f"sessionwarden: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(line, file=sys.stderr)
    return 0
