"""The drill's ``idp`` layer: sessions born in Keycloak, each enforced by Sessionwarden's
deadline and carried out to Keycloak by `sessionwarden idp keycloak`. Every attempt asks, of
one session, three things a relying party would rely on:

* ``idp-refresh``: its refresh token still gets new tokens (200), or ``invalid_grant``;
* ``idp-introspection``: Keycloak's introspection (asked by a resource server in the token's
  audience) says ``active: true``, or false;
* ``idp-logout``: the relying party (testing/relying_party.py, plain standard library) has not
  yet received Keycloak's back-channel logout token naming the session's ``sid``; a refused
  attempt is stamped with the moment the token arrived.

The drill signs each user in (the direct grant) before its clock starts and publishes the
session's login, activity and logout itself, on the realm's tenant, so Keycloak's own events
play no part in the deadline. ``start_idp_actuator=False`` (``--no-idp-actuator``) is the
weakening: nothing ends the sessions in Keycloak, and each case must show bypasses."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sessionwarden.audit.drill.audit import Attempt, Case
from sessionwarden.audit.drill.drivers import Target, stamp
from sessionwarden.audit.drill.options import DrillOptions
from sessionwarden.audit.drill.stack import child_env, start_child
from sessionwarden.config.settings import Settings
from sessionwarden.testing.keycloak_idp import IdpRealm, KeycloakAdminApi, Tokens
from sessionwarden.testing.relying_party import RelyingParty

PASSWORD_BYTES = 18
CASES = (
    Case("idp-refresh", "idp-refresh", "invalid_grant from the deadline on"),
    Case("idp-introspection", "idp-intro", "active: false from the deadline on"),
    Case("idp-logout", "idp-logout", "back-channel logout token with the sid"),
)
ADMIN_USER_ENV, ADMIN_PASSWORD_ENV = "KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD"
"""The admin login of a Keycloak given by ``--keycloak-url`` (Keycloak's own variables)."""


@dataclass
class IdpLayer:
    """A realm of its own on a Keycloak, a relying party, and the users' passwords."""

    base: str
    realm: IdpRealm
    rp: RelyingParty
    passwords: dict[str, str] = field(default_factory=dict)

    def sign_in(self, user: str) -> Tokens:
        if user not in self.passwords:
            self.passwords[user] = secrets.token_urlsafe(PASSWORD_BYTES)
            self.realm.add_user(user, self.passwords[user])
        return self.realm.login(user, self.passwords[user])


def open_idp(
    stop: contextlib.ExitStack, settings: Settings, options: DrillOptions, policy_file: Path,
    say: Callable[[str], None],
) -> IdpLayer:  # fmt: skip
    """Keycloak (``options.keycloak_url``), a realm, the relying party and, unless weakened,
    the actuator in a child process (its log in ``<out>/idp.log``)."""
    if options.keycloak_url is None:
        raise ValueError("the idp layer needs a Keycloak: --keycloak-url")
    base = options.keycloak_url.rstrip("/")
    api = KeycloakAdminApi(
        base, os.environ.get(ADMIN_USER_ENV, "admin"), os.environ.get(ADMIN_PASSWORD_ENV, "admin")
    )
    rp = RelyingParty().start()
    stop.callback(rp.stop)
    realm = IdpRealm.create(api, f"drill-{secrets.token_hex(4)}", rp.url)
    stop.callback(api.call, "DELETE", f"/admin/realms/{realm.name}")
    if options.start_idp_actuator:
        secret = options.workdir / "keycloak-client-secret"
        secret.write_text(realm.secrets["sessionwarden"] + "\n")
        secret.chmod(0o600)
        env = child_env(settings, policy_file, **realm.actuator_env(base, str(secret)),
                        SESSIONWARDEN_KEYCLOAK_GROUP_ID=f"{settings.topics.prefix}idp",
                        SESSIONWARDEN_IDP_METRICS_PORT="0")  # fmt: skip
        child = start_child("idp actuator", ["-m", "sessionwarden", "idp", "keycloak"], env,
                            options.workdir / "idp.log", "idp actuator starting", 60)  # fmt: skip
        stop.callback(child.stop)
        say(f"drill: Keycloak realm {realm.name} on {base}, the idp actuator started")
    else:
        say(f"drill: Keycloak realm {realm.name} on {base} WITHOUT the idp actuator (weakened)")
    return IdpLayer(base, realm, rp)


def idp_session(
    layer: IdpLayer, target: Target, tokens: Tokens, record: Callable[[Attempt], None]
) -> None:
    """Try the three cases at each planned moment (call it in a thread)."""
    refresh, access = tokens.refresh, tokens.access
    label = target.label
    for t in target.attempts:
        delay = t - time.time()
        if delay > 0:
            time.sleep(delay)
        sent = time.time()
        try:
            status, doc = layer.realm.refresh(refresh)
        except OSError:
            status, doc = None, None  # no answer: proves nothing either way
        if status is not None:
            granted = status == 200
            if granted:
                refresh, access = doc["refresh_token"], doc["access_token"]
            record(Attempt("idp-refresh", "idp-refresh", label, "refresh_token",
                           stamp(sent, granted), granted))  # fmt: skip
        sent = time.time()
        with contextlib.suppress(OSError, AssertionError):
            active = layer.realm.introspect(access)
            record(Attempt("idp-introspection", "idp-intro", label, "introspect",
                           stamp(sent, active), active))  # fmt: skip
        arrived = layer.rp.logged_out(tokens.sid)
        granted = arrived is None
        record(Attempt("idp-logout", "idp-logout", label, "backchannel-logout",
                       time.time() if arrived is None else arrived, granted))  # fmt: skip


def idp_threads(
    layer: IdpLayer, targets: list[Target], tokens: dict[str, Tokens],
    record: Callable[[Attempt], None],
) -> list[threading.Thread]:  # fmt: skip
    return [
        threading.Thread(target=idp_session, args=(layer, t, tokens[t.label], record), daemon=True)
        for t in targets
    ]
