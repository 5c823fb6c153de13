"""Keycloak's events reach auth.events through Sessionwarden's event listener
(infra/keycloak/provider), as records the product's own decoder accepts: a real Keycloak, a
real broker, the OpenID Connect endpoints and the admin REST API a deployment uses."""

from __future__ import annotations

from typing import Any

import orjson

from sessionwarden.contracts.codec import decode_auth_event
from sessionwarden.contracts.inputs import (
    Activity,
    AuthEvent,
    Login,
    Logout,
    RoleChange,
    SessionRevoked,
    UserRevoked,
)
from sessionwarden.testing.keycloak import session_id_of
from sessionwarden.testing.waiting import wait_until
from tests.integration.conftest import KeycloakHarness

WAIT_S = 10.0


def _one(keycloak: KeycloakHarness, what: str, **match: Any) -> dict[str, Any]:
    found = wait_until(lambda: keycloak.events.docs(**match), WAIT_S, what)
    assert len(found) == 1, found
    doc: dict[str, Any] = found[0]
    return doc


def _decoded(keycloak: KeycloakHarness, what: str, **match: Any) -> AuthEvent:
    """The one record matching, through the product's decoder (schemas strict)."""
    return decode_auth_event(orjson.dumps(_one(keycloak, what, **match)))


def test_logins_tokens_logouts_and_admin_changes_arrive_as_input_records(
    keycloak: KeycloakHarness,
) -> None:
    realm = keycloak.realm(users={"alice": ("viewer", "editor"), "bob": ("viewer",)})
    alice, bob = realm.users["alice"], realm.users["bob"]
    tokens = keycloak.server.tokens(realm.name)

    status, grant = tokens.password(realm.test_client, "alice", realm.password)
    assert status == 200, grant
    sid = session_id_of(grant["access_token"])
    login = _decoded(keycloak, "the login", tenant=realm.name, type="login")
    assert isinstance(login, Login)
    assert (login.user_id, login.session_id, login.tenant) == (alice, sid, realm.name)
    assert {"viewer", "editor"} <= set(login.roles)
    assert "admin" not in login.roles
    assert (login.user_type, login.risk_profile, login.auth_method) == (
        "standard",
        "medium",
        "password",
    )
    assert login.permissions == login.roles
    assert login.source == f"keycloak:{realm.name}"
    assert abs((login.occurred_at - login.auth_time).total_seconds()) < 5

    status, refreshed = tokens.refresh(realm.test_client, grant["refresh_token"])
    assert status == 200, refreshed
    activity = _decoded(keycloak, "the refresh", tenant=realm.name, type="activity")
    assert isinstance(activity, Activity)
    assert (activity.session_id, activity.action) == (sid, "token.refresh")

    keycloak.admin.remove_realm_roles(realm.name, alice, "editor")
    removed = [
        decode_auth_event(orjson.dumps(d))
        for d in wait_until(
            lambda: [
                d
                for d in keycloak.events.docs(tenant=realm.name, type="role_change")
                if d["roles_removed"]
            ],
            WAIT_S,
            "the role removal",
        )
    ]
    assert len(removed) == 1
    assert isinstance(removed[0], RoleChange)
    assert (removed[0].user_id, removed[0].roles_removed, removed[0].roles_granted) == (
        alice,
        ["editor"],
        [],
    )

    status, _ = tokens.logout(realm.test_client, refreshed["refresh_token"])
    assert status == 204
    logout = _decoded(keycloak, "the logout", tenant=realm.name, type="logout")
    assert isinstance(logout, Logout)
    assert (logout.user_id, logout.session_id) == (alice, sid)

    # An administrator ends one session (Keycloak's admin API, as its console does).
    status, second = tokens.password(realm.test_client, "alice", realm.password)
    assert status == 200, second
    sid2 = session_id_of(second["access_token"])
    wait_until(
        lambda: [
            d
            for d in keycloak.events.docs(tenant=realm.name, type="login")
            if d["session_id"] == sid2
        ],
        WAIT_S,
        "the second login",
    )
    keycloak.admin.delete_session(realm.name, sid2)
    ended = _decoded(keycloak, "the deleted session", tenant=realm.name, type="session_revoked")
    assert isinstance(ended, SessionRevoked)
    assert (ended.user_id, ended.session_id, ended.signal) == (alice, sid2, "session_revoked")

    # The policy's user type and risk profile come from the user's attributes.
    keycloak.admin.update_user(
        realm.name,
        bob,
        attributes={"sessionwarden_user_type": ["admin"], "sessionwarden_risk_profile": ["high"]},
    )
    status, _ = tokens.password(realm.test_client, "bob", realm.password)
    assert status == 200
    bobs = _decoded(keycloak, "bob's login", tenant=realm.name, type="login", user_id=bob)
    assert isinstance(bobs, Login)
    assert (bobs.user_type, bobs.risk_profile) == ("admin", "high")

    keycloak.admin.set_enabled(realm.name, bob, False)
    revoked = _decoded(keycloak, "the disabled user", tenant=realm.name, type="user_revoked")
    assert isinstance(revoked, UserRevoked)
    assert (revoked.user_id, revoked.signal, revoked.source) == (
        bob,
        "account_disabled",
        f"keycloak:{realm.name}",
    )
