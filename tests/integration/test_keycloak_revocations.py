"""Revocations out to the session's real Keycloak, its events in through its own listener: an
idle session ends in Keycloak within a second of Sessionwarden's deadline (refresh refused,
introspection inactive, the relying party's back-channel logout received); a realm role taken
away in the admin API ends the live sessions that held it; a disabled user loses every session;
the service account's least role; Keycloak unreachable is waited out, not lost."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sessionwarden.audit.drill.idp import add_resource_server
from sessionwarden.config.settings import Settings
from sessionwarden.idp.keycloak import KeycloakAdmin, urllib_transport
from sessionwarden.idp.retry import Verdict
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.keycloak import Realm, Tokens, session_id_of
from sessionwarden.testing.relying_party import RelyingParty
from sessionwarden.testing.services import IdpKeycloakProcess
from tests.integration.conftest import KeycloakHarness
from tests.integration.harness import REPO, EnforcerProcess, parse_ts, wait_until
from tests.integration.test_fault_hung_broker import PartitionProxy

pytestmark = [pytest.mark.integration, pytest.mark.keycloak]
POLICY = REPO / "tests/fixtures/policies/keycloak.toml"  # idle 4 s; the realm's own: 30 min
IDLE_S = 4.0
WITHIN_S = 1.0
"""After the deadline: refresh refused, introspection inactive, logout received, each within
a second (0.22-0.25 s measured on 2 cores with one Keycloak; several Keycloaks on the same 2
cores, busy with other work, measured 1.2-1.8 s)."""
HASH = SessionHasher("test-salt")  # the services' log_salt (testing.services)
USERS = {
    "idle": ("viewer",),
    "editor": ("viewer", "editor"),
    "bystander": ("viewer",),
    "leaver": ("viewer",),
    "least": ("viewer",),
    "down": ("viewer",),
}


def outcomes(actuator: IdpKeycloakProcess) -> list[dict[str, Any]]:
    """The actuator's outcome lines of sessions it ended."""
    return [m for m in actuator.messages() if m.get("msg") == "Keycloak session ended"]


@dataclass
class Session:
    access: str
    refresh: str
    sid: str


@dataclass
class Enforced:
    """The module's realm (its events in through Keycloak's listener), one enforcer and one
    actuator on Keycloak's topic set, the relying party, and the revocations: shared by the
    module's tests (each with users of its own), since starting the processes is most of a
    test's time."""

    keycloak: KeycloakHarness
    realm: Realm
    rp: RelyingParty
    settings: Settings
    actuator: IdpKeycloakProcess
    revocations: Collector
    secret_file: Path
    api_secret: str

    @property
    def tokens(self) -> Tokens:
        return self.keycloak.server.tokens(self.realm.name)

    def login(self, user: str) -> Session:
        # The relying party's own client: Keycloak's back-channel logout goes to the clients
        # of the session.
        status, body = self.tokens.password(
            self.realm.rp_client, user, self.realm.password, self.realm.rp_secret
        )
        assert 200 == status, body
        return Session(
            body["access_token"], body["refresh_token"], session_id_of(body["access_token"])
        )

    def refresh(self, session: Session) -> int:
        return int(
            self.tokens.refresh(self.realm.rp_client, session.refresh, self.realm.rp_secret)[0]
        )

    def active(self, session: Session) -> bool:
        """Introspection by the resource server ``api`` (in the tokens' audience)."""
        status, body = self.tokens.introspect("api", self.api_secret, session.access)
        assert 200 == status, body
        return bool(body["active"])

    def revocation(self, session: Session) -> dict[str, Any]:
        docs = wait_until(
            lambda: self.revocations.docs(session_id=session.sid), 30, "the revocation"
        )
        return dict(docs[0])

    def outcomes(self, session: Session) -> list[dict[str, Any]]:
        return [m for m in outcomes(self.actuator) if m.get("session") == HASH(session.sid)]

    def env(self, url: str | None = None) -> dict[str, str]:
        return {
            "SESSIONWARDEN_KEYCLOAK_URL": url or self.keycloak.server.base_url,
            "SESSIONWARDEN_KEYCLOAK_REALMS": self.realm.name,
            "SESSIONWARDEN_KEYCLOAK_CLIENT_ID": self.realm.revoker_client,
            "SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET_FILE": str(self.secret_file),
        }


def first_time(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """When ``condition`` first held (asked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.time()
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture(scope="module")
def enforced(
    keycloak: KeycloakHarness, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Enforced]:
    with RelyingParty() as rp:
        realm = keycloak.realm(users=USERS, backchannel_logout_url=rp.url)
        api_secret = add_resource_server(keycloak.admin, realm)
        secret = tmp_path_factory.mktemp("keycloak") / "client-secret"
        secret.write_text(realm.revoker_secret + "\n")
        secret.chmod(0o600)
        settings = keycloak.settings(policy_file=POLICY)
        revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
        try:
            with EnforcerProcess(settings, policy=POLICY) as enforcer:
                enforced = Enforced(
                    keycloak, realm, rp, settings, None, revocations, secret, api_secret
                )  # type: ignore[arg-type]
                with IdpKeycloakProcess(settings, POLICY, REPO, **enforced.env()) as actuator:
                    enforcer.wait_assigned()
                    actuator.wait_assigned()
                    enforced.actuator = actuator
                    yield enforced
        finally:
            revocations.close()


def test_an_idle_keycloak_session_ends_in_keycloak_right_after_its_deadline(
    enforced: Enforced,
) -> None:
    """Direct grant, then idle past Sessionwarden's 4 s (Keycloak's own: 30 min): from the
    deadline on, within WITHIN_S, the refresh token gets invalid_grant, introspection says
    inactive, and the relying party holds the logout token with the session's sid."""
    session = enforced.login("idle")
    logged_in = time.time()
    assert enforced.active(session)  # live, and the introspecting client is in the audience
    time.sleep(max(0.0, logged_in + IDLE_S - 0.2 - time.time()))
    # Introspection and the logout are no activity; a refresh is (Keycloak's listener publishes
    # it), so the refresh is tried only once the session ended.
    seen: dict[str, float] = {}

    def ended() -> bool:
        if "introspection" not in seen and not enforced.active(session):
            seen["introspection"] = time.time()
        logged_out = enforced.rp.logged_out(session.sid)
        if logged_out is not None:
            seen["logout"] = logged_out
        return len(seen) == 2

    wait_until(ended, 10, "introspection inactive and the back-channel logout")
    seen["refresh"] = first_time(lambda: enforced.refresh(session) == 400, 5, "refused")
    revocation = enforced.revocation(session)
    ended = wait_until(lambda: enforced.outcomes(session), 5, "the outcome line")
    assert ("idle_timeout", enforced.realm.name) == (revocation["reason"], revocation["tenant"])
    deadline = parse_ts(revocation["effective_at"])
    assert abs(deadline - (logged_in + IDLE_S)) < 1.0  # Keycloak's login event set the clock
    delays = {name: round(at - deadline, 3) for name, at in seen.items()}
    assert all(0 <= d <= WITHIN_S for d in delays.values()), delays
    assert [("ended", 1)] == [(m["outcome"], m["attempts"]) for m in ended]
    assert all(session.sid not in str(m) for m in enforced.actuator.messages())  # never raw


def test_a_realm_role_removed_in_keycloak_ends_the_live_sessions_that_held_it(
    enforced: Enforced,
) -> None:
    """editor loses the role in the admin API: both of its sessions end in Keycloak (refresh
    refused, logout received), revoked for the role; bystander, without it, keeps its own."""
    admin = enforced.keycloak.admin
    first, second = enforced.login("editor"), enforced.login("editor")
    other = enforced.login("bystander")
    removed_at = time.time()
    admin.remove_realm_roles(enforced.realm.name, enforced.realm.users["editor"], "editor")
    for session in (first, second):
        # Keycloak sends the logout while it ends the session, before it answers the DELETE:
        # the refresh is refused once it has answered.
        wait_until(lambda s=session: enforced.rp.logged_out(s.sid), 10, "the logout")
        first_time(lambda s=session: enforced.refresh(s) == 400, 5, "the refresh refused")
        revocation = enforced.revocation(session)
        assert ("permissions_revoked", ["editor"]) == (
            revocation["reason"],
            revocation["roles_removed"],
        )
        assert enforced.rp.logged_out(session.sid) - removed_at < IDLE_S  # not the idle deadline
    assert enforced.rp.logged_out(other.sid) is None or not any(
        d["reason"] == "permissions_revoked"
        for d in enforced.revocations.docs(session_id=other.sid)
    )


def test_a_user_disabled_in_keycloak_loses_every_session(enforced: Enforced) -> None:
    """Disabling leaves Keycloak's sessions listed (keycloak/keycloak#37981); through the
    enforcer each one ends there, and the relying party hears of each."""
    admin = enforced.keycloak.admin
    user_id = enforced.realm.users["leaver"]
    sessions = [enforced.login("leaver") for _ in range(2)]
    admin.set_enabled(enforced.realm.name, user_id, False)
    for session in sessions:
        wait_until(lambda s=session: enforced.rp.logged_out(s.sid), 10, "the logout")
        assert "signal" == enforced.revocation(session)["reason"]
    # Listed until Keycloak has answered the DELETEs (the logouts go out before).
    wait_until(lambda: not admin.user_sessions(enforced.realm.name, user_id), 5, "none listed")


def test_the_service_account_needs_manage_users_and_nothing_more(
    enforced: Enforced, tmp_path: Path
) -> None:
    """With view-users alone Keycloak refuses (403: asked again, never dropped); with
    manage-users (the realm's revoker) the session ends (204), and asking again answers 404."""
    admin, realm = enforced.keycloak.admin, enforced.realm.name
    viewer_secret = "vw-" + uuid.uuid4().hex
    client = admin.call("POST", f"/{realm}/clients", {
        "clientId": "viewer", "secret": viewer_secret, "publicClient": False,
        "standardFlowEnabled": False, "serviceAccountsEnabled": True})  # fmt: skip
    account = admin.call("GET", f"/{realm}/clients/{client}/service-account-user")
    management = admin.call("GET", f"/{realm}/clients?clientId=realm-management")[0]
    role = admin.call("GET", f"/{realm}/clients/{management['id']}/roles/view-users")
    admin.call(
        "POST", f"/{realm}/users/{account['id']}/role-mappings/clients/{management['id']}", [role]
    )
    (tmp_path / "viewer").write_text(viewer_secret)
    base = enforced.keycloak.server.base_url
    viewer = Settings(keycloak_url=base, keycloak_client_id="viewer",
                      keycloak_client_secret_file=tmp_path / "viewer").keycloak  # fmt: skip
    manager = Settings(keycloak_url=base, keycloak_client_id=enforced.realm.revoker_client,
                       keycloak_client_secret_file=enforced.secret_file).keycloak  # fmt: skip
    sid = enforced.login("least").sid
    refused = KeycloakAdmin(viewer, urllib_transport(30)).end_session(realm, sid)
    assert (Verdict.AGAIN, 403) == (refused.verdict, refused.status)
    ender = KeycloakAdmin(manager, urllib_transport(30))
    assert [(Verdict.ENDED, 204), (Verdict.ALREADY_ENDED, 404)] == [
        (a.verdict, a.status)
        for a in (ender.end_session(realm, sid), ender.end_session(realm, sid))
    ]


def test_keycloak_unreachable_is_waited_out_and_the_session_ends_once_it_answers(
    enforced: Enforced, tmp_path: Path
) -> None:
    """An actuator reaching Keycloak through a proxy that holds every request unanswered: the
    revocation is asked again with backoff and nothing is committed; healed, the session ends
    (refresh refused, logout received) and the outcome says how many attempts it took. A realm
    of its own, which the module's actuator leaves to this one."""
    keycloak = enforced.keycloak
    realm = keycloak.realm(users={"down": ("viewer",)}, backchannel_logout_url=enforced.rp.url)
    secret = tmp_path / "secret"
    secret.write_text(realm.revoker_secret)
    proxy = PartitionProxy()
    proxy.upstream = ("127.0.0.1", keycloak.server.port)
    proxy.cut()
    env = {
        "SESSIONWARDEN_KEYCLOAK_URL": f"http://127.0.0.1:{proxy.port}",
        "SESSIONWARDEN_KEYCLOAK_REALMS": realm.name,
        "SESSIONWARDEN_KEYCLOAK_CLIENT_ID": realm.revoker_client,
        "SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET_FILE": str(secret),
        "SESSIONWARDEN_KEYCLOAK_GROUP_ID": f"{enforced.settings.enforcer.group_id}-idp-down",
        "SESSIONWARDEN_KEYCLOAK_TIMEOUT_S": "1",
        "SESSIONWARDEN_KEYCLOAK_RETRY_BASE_S": "0.2",
        "SESSIONWARDEN_KEYCLOAK_RETRY_MAX_S": "1",
    }
    tokens = keycloak.server.tokens(realm.name)
    try:
        with IdpKeycloakProcess(enforced.settings, POLICY, REPO, **env) as actuator:
            actuator.wait_assigned()
            status, body = tokens.password(realm.rp_client, "down", realm.password, realm.rp_secret)
            assert 200 == status, body
            sid, refresh = session_id_of(body["access_token"]), body["refresh_token"]
            wait_until(lambda: enforced.revocations.docs(session_id=sid), 30, "the revocation")
            wait_until(lambda: actuator.said("asking again"), 10, "a failed attempt")
            still_live = tokens.refresh(realm.rp_client, refresh, realm.rp_secret)[0]
            proxy.heal()
            wait_until(lambda: enforced.rp.logged_out(sid), 15, "the logout")
            ended = wait_until(lambda: outcomes(actuator), 10, "the outcome line")
            status, _ = tokens.refresh(realm.rp_client, refresh, realm.rp_secret)
    finally:
        proxy.close()
    assert 200 == still_live  # only the actuator ends Keycloak's session
    assert 400 == status
    ((outcome, attempts),) = [(m["outcome"], m["attempts"]) for m in ended]
    assert "ended" == outcome and attempts >= 2
