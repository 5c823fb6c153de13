"""`sessionwarden idp keycloak`: end in Keycloak the sessions Sessionwarden revokes."""

from __future__ import annotations

import argparse
import signal

from sessionwarden.cli.options import Subcommands

EXTRA = "server"


def add_parser(sub: Subcommands[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    idp = sub.add_parser("idp", help="carry revocations out to an identity provider")
    isub = idp.add_subparsers(dest="idp_command", required=True, metavar="PROVIDER")
    isub.add_parser(
        "keycloak",
        help="end revoked sessions in Keycloak (keycloak_* settings)",
        description="Reads the revocation topic and ends each revoked session of the "
        "keycloak_realms in Keycloak through its admin REST API, so its refresh tokens die, "
        "introspection says inactive and its back-channel logout reaches its clients "
        "(docs/KEYCLOAK.md).",
    )
    return idp


def run(args: argparse.Namespace) -> int:
    from sessionwarden.cli.options import check_kafka_security
    from sessionwarden.config.settings import load_settings
    from sessionwarden.errors import ConfigError
    from sessionwarden.idp.actuator import KeycloakActuator
    from sessionwarden.idp.keycloak import KeycloakAdmin, urllib_transport
    from sessionwarden.ops.logs import bind_process, configure_logging

    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    bind_process(service="idp-keycloak")
    check_kafka_security(settings)
    keycloak = settings.keycloak
    if not keycloak.url or keycloak.client_secret is None:
        raise ConfigError(
            "sessionwarden idp keycloak needs keycloak_url and keycloak_client_secret_file"
        )
    admin = KeycloakAdmin(keycloak, urllib_transport(keycloak.timeout_s, keycloak.ca_file))
    actuator = KeycloakActuator(settings, admin)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: actuator.stop())
    actuator.run()
    return 0
