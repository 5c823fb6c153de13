"""The drill's ``idp`` layer: sessions born in Keycloak, each enforced by Sessionwarden's
deadline and carried out to Keycloak by `sessionwarden idp keycloak`. Every attempt asks, of
one session, three things a relying party would rely on:

* ``idp-refresh``: its refresh token still gets new tokens (200), or ``invalid_grant``;
* ``idp-introspection``: Keycloak's introspection (asked by a resource server ``api``, in the
  token's audience) says ``active: true``, or false;
* ``idp-logout``: the relying party (testing/relying_party.py, plain standard library) has not
  yet received Keycloak's back-channel logout token naming the session's ``sid``; a refused
  attempt is stamped with the moment the token arrived.

The realm is the drill's own, without Sessionwarden's event listener: the drill signs each user
in (the direct grant) before its clock starts and publishes the session's login, activity and
logout itself, on the realm's tenant, so the attempts' refreshes never move a deadline.
``start_idp_actuator=False`` (``--no-idp-actuator``) is the weakening: nothing ends the
sessions in Keycloak, and each case must show bypasses."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sessionwarden.audit.drill.audit import Attempt, Case
from sessionwarden.audit.drill.drivers import Target, stamp
from sessionwarden.audit.drill.options import DrillOptions
from sessionwarden.audit.drill.stack import child_env, start_child
from sessionwarden.config.settings import Settings
from sessionwarden.testing.keycloak import (
    KeycloakAdmin,
    KeycloakServer,
    Realm,
    Tokens,
    provision,
    session_id_of,
)
from sessionwarden.testing.relying_party import RelyingParty

CASES = (
    Case("idp-refresh", "idp-refresh", "invalid_grant from the deadline on"),
    Case("idp-introspection", "idp-intro", "active: false from the deadline on"),
    Case("idp-logout", "idp-logout", "back-channel logout token with the sid"),
)
ADMIN_USER_ENV, ADMIN_PASSWORD_ENV = "KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD"
"""The admin login of a Keycloak given by ``--keycloak-url`` (Keycloak's own variables)."""


@dataclass(frozen=True)
class Session:
    """A Keycloak session as its relying party holds it."""

    access: str
    refresh: str
    sid: str


@dataclass
class IdpLayer:
    """A realm of the drill's own on a Keycloak, its token endpoints and the relying party."""

    realm: Realm
    tokens: Tokens
    rp: RelyingParty
    api_secret: str  # the resource server's that introspects

    def sign_in(self, user: str) -> Session:
        """The direct grant on the relying party's client (Keycloak's back-channel logout goes
        to the clients of the session)."""
        status, body = self.tokens.password(
            self.realm.rp_client, user, self.realm.password, self.realm.rp_secret
        )
        if status != 200:
            raise AssertionError(f"Keycloak refused the drill's login of {user}: HTTP {status}")
        return Session(
            body["access_token"], body["refresh_token"], session_id_of(body["access_token"])
        )

    def refresh(self, refresh_token: str) -> tuple[int, dict[str, str] | None]:
        status, body = self.tokens.refresh(
            self.realm.rp_client, refresh_token, self.realm.rp_secret
        )
        return int(status), body if isinstance(body, dict) else None

    def active(self, access: str) -> bool | None:
        """None: no clear answer (proves nothing either way)."""
        status, body = self.tokens.introspect("api", self.api_secret, access)
        return bool(body.get("active")) if status == 200 and isinstance(body, dict) else None


def add_resource_server(admin: KeycloakAdmin, realm: Realm) -> str:
    """A confidential client ``api`` that introspects the relying party's tokens, in their
    audience (an audience mapper on ``rp``: Keycloak says ``active: false`` to a client not in
    the token's audience, whatever the token). Returns its secret."""
    secret = "api-" + secrets.token_hex(16)
    admin.call("POST", f"/{realm.name}/clients", {
        "clientId": "api", "secret": secret, "publicClient": False,
        "standardFlowEnabled": False, "directAccessGrantsEnabled": False})  # fmt: skip
    rp = admin.call("GET", f"/{realm.name}/clients?clientId={realm.rp_client}")[0]["id"]
    admin.call("POST", f"/{realm.name}/clients/{rp}/protocol-mappers/models", {
        "name": "api-audience", "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "config": {"included.client.audience": "api", "access.token.claim": "true",
                   "introspection.token.claim": "true"}})  # fmt: skip
    return secret


def open_idp(
    stop: contextlib.ExitStack, settings: Settings, options: DrillOptions, policy_file: Path,
    users: list[str], say: Callable[[str], None],
) -> IdpLayer:  # fmt: skip
    """Keycloak (``--keycloak-url``, or one the drill starts from `make keycloak`'s copy), a
    realm with ``users``, the relying party and, unless weakened, the actuator in a child
    process (its log in ``<out>/idp.log``)."""
    if options.keycloak_url is not None:
        base = options.keycloak_url.rstrip("/")
        admin = KeycloakAdmin(base, os.environ.get(ADMIN_USER_ENV, "admin"),
                              os.environ.get(ADMIN_PASSWORD_ENV, "admin"))  # fmt: skip
    else:
        say("drill: starting Keycloak (`make keycloak` builds it once)")
        server = KeycloakServer().start()
        stop.callback(server.stop)
        base, admin = server.base_url, server.admin()
    rp = RelyingParty().start()
    stop.callback(rp.stop)
    realm = provision(
        admin, f"drill-{secrets.token_hex(4)}", users=dict.fromkeys(users, ("viewer",)),
        backchannel_logout_url=rp.url, listener=False,
    )  # fmt: skip
    stop.callback(admin.call, "DELETE", f"/{realm.name}", ok=(404,))
    if options.start_idp_actuator:
        secret = options.workdir / "keycloak-client-secret"
        secret.write_text(realm.revoker_secret + "\n")
        secret.chmod(0o600)
        env = child_env(settings, policy_file, SESSIONWARDEN_KEYCLOAK_URL=base,
                        SESSIONWARDEN_KEYCLOAK_REALMS=realm.name,
                        SESSIONWARDEN_KEYCLOAK_CLIENT_ID=realm.revoker_client,
                        SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET_FILE=str(secret),
                        SESSIONWARDEN_KEYCLOAK_GROUP_ID=f"{settings.topics.prefix}idp",
                        SESSIONWARDEN_IDP_METRICS_PORT="0")  # fmt: skip
        child = start_child("idp actuator", ["-m", "sessionwarden", "idp", "keycloak"], env,
                            options.workdir / "idp.log", "idp actuator starting", 60)  # fmt: skip
        stop.callback(child.stop)
        say(f"drill: Keycloak realm {realm.name} on {base}, the idp actuator started")
    else:
        say(f"drill: Keycloak realm {realm.name} on {base} WITHOUT the idp actuator (weakened)")
    return IdpLayer(realm, Tokens(base, realm.name), rp, add_resource_server(admin, realm))


def idp_session(
    layer: IdpLayer, target: Target, session: Session, record: Callable[[Attempt], None]
) -> None:
    """Try the three cases at each planned moment (call it in a thread). An answer that is
    no answer (a connection error, an HTTP error other than a refusal) proves nothing and is
    not recorded."""
    refresh, access, label = session.refresh, session.access, target.label
    for t in target.attempts:
        time.sleep(max(0.0, t - time.time()))
        sent = time.time()
        with contextlib.suppress(OSError):
            status, body = layer.refresh(refresh)
            if status == 200 and body is not None:
                refresh, access = body["refresh_token"], body["access_token"]
            if status in (200, 400):
                record(Attempt("idp-refresh", "idp-refresh", label, "refresh_token",
                               stamp(sent, status == 200), status == 200))  # fmt: skip
        sent = time.time()
        with contextlib.suppress(OSError):
            active = layer.active(access)
            if active is not None:
                record(Attempt("idp-introspection", "idp-intro", label, "introspect",
                               stamp(sent, active), active))  # fmt: skip
        arrived = layer.rp.logged_out(session.sid)
        record(Attempt("idp-logout", "idp-logout", label, "backchannel-logout",
                       time.time() if arrived is None else arrived, arrived is None))  # fmt: skip


def idp_threads(
    layer: IdpLayer, targets: list[Target], sessions: dict[str, Session],
    record: Callable[[Attempt], None],
) -> list[threading.Thread]:  # fmt: skip
    return [
        threading.Thread(
            target=idp_session, args=(layer, t, sessions[t.label], record), daemon=True
        )
        for t in targets
    ]
