"""What the revocation path needs of a Keycloak realm, for the tests, the drill and the
benchmark: a realm whose sessions Sessionwarden enforces, with

* ``sessionwarden``: the actuator's service account (client credentials only) holding one
  role of ``realm-management`` (``manage-users``: the least that can end a session);
* ``app``: a confidential client with the direct grant, whose back-channel logout goes to a
  relying party, and whose access tokens carry ``api`` in their audience (an audience mapper);
* ``api``: the resource server that introspects them (Keycloak answers ``active: false`` to a
  client not in the token's audience, whatever the token);
* users with a password and realm roles;

and the client calls the tests make: the direct grant, a refresh, an introspection."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_S = 90.0  # a realm's creation takes seconds on a loaded machine


class KeycloakAdminApi:
    """The admin REST API as the master realm's admin (``admin-cli``, password grant)."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._token = ""

    def call(
        self, method: str, path: str, body: Any = None, *, form: dict[str, str] | None = None,
        token: str | None = None, retry: bool = True,
    ) -> tuple[int, Any]:  # fmt: skip
        """(status, parsed JSON or None); a 401 with the admin token gets a new one once."""
        headers = {}
        data = None
        bearer = token if token is not None else (self._token or self._login())
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                status, text = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        if status == 401 and token is None and retry:
            self._login()
            return self.call(method, path, body, form=form, retry=False)
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text.decode("utf-8", "replace")

    def _login(self) -> str:
        status, doc = self.call(
            "POST",
            "/realms/master/protocol/openid-connect/token",
            form={"grant_type": "password", "client_id": "admin-cli", **self._credentials},
            token="",
        )
        if status != 200:
            raise AssertionError(f"Keycloak's admin login failed: HTTP {status}")
        self._token = doc["access_token"]
        return self._token

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, doc = self.call(method, path, body)
        if status >= 300:
            raise AssertionError(f"{method} {path}: HTTP {status} {doc}")
        return doc


@dataclass(frozen=True)
class Tokens:
    access: str
    refresh: str
    sid: str
    claims: dict[str, Any]


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return doc


@dataclass
class IdpRealm:
    """A provisioned realm: its name, its clients' secrets, and the admin API it was made with."""

    api: KeycloakAdminApi
    name: str
    secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls, api: KeycloakAdminApi, name: str, backchannel_url: str | None,
        sso_idle_s: int = 1800, roles: tuple[str, ...] = ("viewer", "editor"),
        actuator_role: str = "manage-users",
    ) -> IdpRealm:  # fmt: skip
        realm = cls(
            api, name, {c: secrets.token_urlsafe(24) for c in ("sessionwarden", "app", "api")}
        )
        api.ok("POST", "/admin/realms", {
            "realm": name, "enabled": True, "ssoSessionIdleTimeout": sso_idle_s,
            "ssoSessionMaxLifespan": max(sso_idle_s, 36000),
            "roles": {"realm": [{"name": r} for r in roles]},
        })  # fmt: skip
        app_attributes = {"backchannel.logout.session.required": "true"}
        if backchannel_url is not None:
            app_attributes["backchannel.logout.url"] = backchannel_url
        realm.add_client("app", directAccessGrantsEnabled=True, attributes=app_attributes,
                         protocolMappers=[{
                             "name": "api-audience", "protocol": "openid-connect",
                             "protocolMapper": "oidc-audience-mapper",
                             "config": {"included.client.audience": "api",
                                        "access.token.claim": "true",
                                        "id.token.claim": "false"}}])  # fmt: skip
        realm.add_client("api")
        realm.add_client("sessionwarden", serviceAccountsEnabled=True)
        realm.grant_service_account("sessionwarden", actuator_role)
        return realm

    def add_client(self, client_id: str, **extra: Any) -> None:
        if client_id not in self.secrets:
            self.secrets[client_id] = secrets.token_urlsafe(24)
        self.api.ok("POST", f"/admin/realms/{self.name}/clients", {
            "clientId": client_id, "secret": self.secrets[client_id], "publicClient": False,
            "standardFlowEnabled": False, "directAccessGrantsEnabled": False, **extra,
        })  # fmt: skip

    def client_uuid(self, client_id: str) -> str:
        found = self.api.ok("GET", f"/admin/realms/{self.name}/clients?clientId={client_id}")
        return str(found[0]["id"])

    def grant_service_account(self, client_id: str, role: str) -> None:
        """Give the client's service account one role of ``realm-management``."""
        rm = self.client_uuid("realm-management")
        user = self.api.ok(
            "GET", f"/admin/realms/{self.name}/clients/{self.client_uuid(client_id)}"
            "/service-account-user",
        )  # fmt: skip
        found = self.api.ok("GET", f"/admin/realms/{self.name}/clients/{rm}/roles/{role}")
        self.api.ok(
            "POST", f"/admin/realms/{self.name}/users/{user['id']}/role-mappings/clients/{rm}",
            [found],
        )  # fmt: skip

    def add_user(self, username: str, password: str, roles: tuple[str, ...] = ()) -> str:
        """The new user's id."""
        self.api.ok("POST", f"/admin/realms/{self.name}/users", {
            "username": username, "enabled": True, "email": f"{username}@example.com",
            "emailVerified": True, "firstName": username, "lastName": "Test",
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        })  # fmt: skip
        user_id = str(
            self.api.ok("GET", f"/admin/realms/{self.name}/users?exact=true&username={username}")[
                0
            ]["id"]
        )
        if roles:
            self.set_roles(user_id, add=roles)
        return user_id

    def set_roles(
        self, user_id: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()
    ) -> None:
        path = f"/admin/realms/{self.name}/users/{user_id}/role-mappings/realm"
        for method, names in (("POST", add), ("DELETE", remove)):
            if names:
                reps = [self.api.ok("GET", f"/admin/realms/{self.name}/roles/{n}") for n in names]
                self.api.ok(method, path, reps)

    def set_enabled(self, user_id: str, enabled: bool) -> None:
        self.api.ok("PUT", f"/admin/realms/{self.name}/users/{user_id}", {"enabled": enabled})

    def user_sessions(self, user_id: str) -> list[str]:
        found = self.api.ok("GET", f"/admin/realms/{self.name}/users/{user_id}/sessions")
        return [str(s["id"]) for s in found]

    # -- the clients' side ---------------------------------------------------------------

    def _token_endpoint(self, form: dict[str, str]) -> tuple[int, Any]:
        return self.api.call(
            "POST", f"/realms/{self.name}/protocol/openid-connect/token",
            form={"client_id": "app", "client_secret": self.secrets["app"], **form}, token="",
        )  # fmt: skip

    def login(self, username: str, password: str) -> Tokens:
        """The direct grant: a new Keycloak session."""
        status, doc = self._token_endpoint(
            {"grant_type": "password", "username": username, "password": password,
             "scope": "openid"}
        )  # fmt: skip
        if status != 200:
            raise AssertionError(f"login of {username}: HTTP {status} {doc}")
        claims = claims_of(doc["access_token"])
        return Tokens(doc["access_token"], doc["refresh_token"], str(claims["sid"]), claims)

    def refresh(self, refresh_token: str) -> tuple[int, Any]:
        """(status, answer): 200 with new tokens, or 400 ``invalid_grant``."""
        return self._token_endpoint({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def introspect(self, token: str) -> bool:
        """Whether Keycloak says the token is active, asked by the ``api`` client."""
        status, doc = self.api.call(
            "POST", f"/realms/{self.name}/protocol/openid-connect/token/introspect",
            form={"token": token, "client_id": "api", "client_secret": self.secrets["api"]},
            token="",
        )  # fmt: skip
        if status != 200:
            raise AssertionError(f"introspection: HTTP {status} {doc}")
        return bool(doc.get("active"))

    def actuator_env(self, base: str, secret_file: str) -> dict[str, str]:
        """The keycloak_* settings of `sessionwarden idp keycloak` for this realm."""
        return {
            "SESSIONWARDEN_KEYCLOAK_URL": base,
            "SESSIONWARDEN_KEYCLOAK_REALMS": self.name,
            "SESSIONWARDEN_KEYCLOAK_CLIENT_ID": "sessionwarden",
            "SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET_FILE": secret_file,
        }
