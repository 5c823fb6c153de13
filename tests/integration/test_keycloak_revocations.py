"""Revocations out to a real Keycloak: the enforcer's deadline ends the Keycloak session, so
its refresh token is refused, introspection says inactive and the relying party receives
Keycloak's back-channel logout, each within a second of the deadline; the service account's
least role; and Keycloak down is waited out, not lost."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from sessionwarden.config.settings import Settings
from sessionwarden.idp.keycloak import KeycloakAdmin, urllib_transport
from sessionwarden.idp.retry import Verdict
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.testing.keycloak_idp import IdpRealm, KeycloakAdminApi
from sessionwarden.testing.relying_party import RelyingParty
from sessionwarden.testing.services import IdpKeycloakProcess
from tests.integration.conftest import TopicSets
from tests.integration.harness import (
    FAST_POLICY,
    REPO,
    Collector,
    EnforcerProcess,
    login_doc,
    parse_ts,
    wait_until,
)
from tests.integration.test_fault_hung_broker import PartitionProxy
from tests.integration.test_pg_sink import publish

pytestmark = [pytest.mark.integration, pytest.mark.keycloak]
HASH = SessionHasher("test-salt")  # the services' log_salt (testing.services)
WITHIN_S = 1.0  # after the deadline: refresh refused, introspection inactive, logout received
IDLE_S = 3.0  # FAST_POLICY's idle timeout; the realm's own is 30 min


@pytest.fixture(scope="module")
def relying_party() -> Iterator[RelyingParty]:
    with RelyingParty() as rp:
        yield rp


@pytest.fixture(scope="module")
def realm(
    keycloak_base: str, keycloak_admin: KeycloakAdminApi, relying_party: RelyingParty
) -> IdpRealm:
    return IdpRealm.create(keycloak_admin, f"sw-{uuid.uuid4().hex[:8]}", relying_party.url)


def secret_for(realm: IdpRealm, folder: Path) -> Path:
    path = folder / f"{realm.name}-client-secret"
    path.write_text(realm.secrets["sessionwarden"] + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def secret_file(realm: IdpRealm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return secret_for(realm, tmp_path_factory.mktemp("keycloak"))


@dataclass
class Enforced:
    """One set of topics, the enforcer, the actuator of ``realm`` and the revocations, shared by
    the module's tests (each its own users and sessions: starting the processes is most of a
    test's time)."""

    settings: Settings
    actuator: IdpKeycloakProcess
    revocations: Collector

    def outcomes(self, sid_hash: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.actuator.messages() if m.get("msg") == "Keycloak session ended"
                and (sid_hash is None or m.get("session") == sid_hash)]  # fmt: skip


@pytest.fixture(scope="module")
def enforced(
    bootstrap_servers: str, admin: AdminClient, metrics_token_dir: Path, keycloak_base: str,
    realm: IdpRealm, secret_file: Path,
) -> Iterator[Enforced]:  # fmt: skip
    topics = TopicSets(bootstrap_servers, admin, metrics_token_dir)
    settings = topics()
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    env = realm.actuator_env(keycloak_base, str(secret_file))
    try:
        with (
            EnforcerProcess(settings) as enforcer,
            IdpKeycloakProcess(settings, FAST_POLICY, REPO, **env) as actuator,
        ):
            enforcer.wait_assigned()
            actuator.wait_assigned()
            yield Enforced(settings, actuator, revocations)
    finally:
        revocations.close()
        topics.close()


def test_an_idle_keycloak_session_ends_in_keycloak_within_a_second_of_its_deadline(
    enforced: Enforced, realm: IdpRealm, relying_party: RelyingParty
) -> None:
    """Direct grant, then idle past Sessionwarden's 3 s (Keycloak's own: 30 min): from the
    deadline on, within 1 s, the refresh token gets invalid_grant, introspection says
    inactive, and the RP holds the logout token with the session's sid."""
    user = f"idle-{uuid.uuid4().hex[:6]}"
    realm.add_user(user, "pw")
    tokens = realm.login(user, "pw")
    logged_in = time.time()
    publish(enforced.settings, login_doc(tokens.sid, user, logged_in, tenant=realm.name))
    deadline = logged_in + IDLE_S
    assert realm.introspect(tokens.access)  # live, and the api client is in the audience
    time.sleep(max(0.0, deadline - time.time()))
    seen: dict[str, float] = {}

    def refused_everywhere() -> bool:
        """Introspection and refresh asked in turn; each one's first refusal noted."""
        if "introspection" not in seen and not realm.introspect(tokens.access):
            seen["introspection"] = time.time()
        if "refresh" not in seen and realm.refresh(tokens.refresh)[0] == 400:
            seen["refresh"] = time.time()
        return len(seen) == 2

    wait_until(refused_everywhere, 10, "introspection inactive and the refresh refused")
    seen["logout"] = wait_until(
        lambda: relying_party.logged_out(tokens.sid), 10, "the back-channel logout"
    )
    (revocation,) = enforced.revocations.docs(session_id=tokens.sid)
    status, answer = realm.refresh(tokens.refresh)
    ended = wait_until(lambda: enforced.outcomes(HASH(tokens.sid)), 5, "the outcome line")
    assert ("idle_timeout", realm.name) == (revocation["reason"], revocation["tenant"])
    effective = parse_ts(revocation["effective_at"])
    assert abs(effective - deadline) < 0.5  # the deadline the enforcer fired is the planned one
    delays = {name: round(at - effective, 3) for name, at in seen.items()}
    assert all(0 <= d <= WITHIN_S for d in delays.values()), delays
    assert (400, "invalid_grant") == (status, answer["error"])
    assert [("ended", realm.name, 1)] == [(m["outcome"], m["realm"], m["attempts"]) for m in ended]
    assert all(tokens.sid not in str(m) for m in enforced.actuator.messages())  # never raw


def test_the_service_account_needs_manage_users_and_nothing_more(
    keycloak_base: str, keycloak_admin: KeycloakAdminApi, realm: IdpRealm, secret_file: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """With view-users alone Keycloak refuses (403: asked again, never dropped); with
    manage-users the session ends (204), and asking again answers 404: already ended."""
    realm.add_client("viewer-account", serviceAccountsEnabled=True)
    realm.grant_service_account("viewer-account", "view-users")
    user = f"least-{uuid.uuid4().hex[:6]}"
    realm.add_user(user, "pw")
    sid = realm.login(user, "pw").sid
    viewer_secret = tmp_path / "viewer"
    viewer_secret.write_text(realm.secrets["viewer-account"])
    viewer = Settings(keycloak_url=keycloak_base, keycloak_client_id="viewer-account",
                      keycloak_client_secret_file=viewer_secret).keycloak  # fmt: skip
    manager = Settings(keycloak_url=keycloak_base, keycloak_client_id="sessionwarden",
                       keycloak_client_secret_file=secret_file).keycloak  # fmt: skip
    refused = KeycloakAdmin(viewer, urllib_transport(30)).end_session(realm.name, sid)
    assert (Verdict.AGAIN, 403) == (refused.verdict, refused.status)
    admin = KeycloakAdmin(manager, urllib_transport(30))
    assert [(Verdict.ENDED, 204), (Verdict.ALREADY_ENDED, 404)] == [
        (a.verdict, a.status) for a in (admin.end_session(realm.name, sid),
                                        admin.end_session(realm.name, sid))
    ]  # fmt: skip


def test_keycloak_unreachable_is_waited_out_and_the_session_ends_once_it_answers(
    enforced: Enforced,
    keycloak_base: str,
    keycloak_admin: KeycloakAdminApi,
    relying_party: RelyingParty,
    tmp_path: Path,
) -> None:
    """The actuator reaches Keycloak through a proxy that holds every request unanswered: the
    revocation is asked again with backoff and nothing is committed; healed, the session ends
    (refresh refused, logout received) and the outcome says how many attempts it took. A realm
    of its own: the module's actuator leaves it to this one."""
    settings = enforced.settings
    realm = IdpRealm.create(keycloak_admin, f"sw-down-{uuid.uuid4().hex[:6]}", relying_party.url)
    user = f"down-{uuid.uuid4().hex[:6]}"
    realm.add_user(user, "pw")
    proxy = PartitionProxy()
    host, port = keycloak_base.split("://")[1].split(":")
    proxy.upstream = (host, int(port.rstrip("/")))
    proxy.cut()
    env = {
        **realm.actuator_env(f"http://127.0.0.1:{proxy.port}", str(secret_for(realm, tmp_path))),
        "SESSIONWARDEN_KEYCLOAK_GROUP_ID": f"{settings.topics.prefix}idp-down",
        "SESSIONWARDEN_KEYCLOAK_TIMEOUT_S": "1",
        "SESSIONWARDEN_KEYCLOAK_RETRY_BASE_S": "0.2",
        "SESSIONWARDEN_KEYCLOAK_RETRY_MAX_S": "1",
    }
    try:
        with IdpKeycloakProcess(settings, FAST_POLICY, REPO, **env) as actuator:
            actuator.wait_assigned()
            tokens = realm.login(user, "pw")
            publish(settings, login_doc(tokens.sid, user, time.time(), tenant=realm.name))
            wait_until(lambda: enforced.revocations.docs(session_id=tokens.sid), 30, "revoked")
            wait_until(lambda: actuator.said("asking again"), 10, "a failed attempt")
            still_live = realm.refresh(tokens.refresh)
            proxy.heal()
            wait_until(lambda: relying_party.logged_out(tokens.sid), 15, "the logout")
            ended = wait_until(
                lambda: [
                    m for m in actuator.messages() if m.get("msg") == "Keycloak session ended"
                ],
                10,
                "the outcome line",
            )
            status, _ = realm.refresh(tokens.refresh)
    finally:
        proxy.close()
    assert 200 == still_live[0]  # only the actuator ends Keycloak's session
    assert 400 == status
    ((outcome, attempts),) = [(m["outcome"], m["attempts"]) for m in ended]
    assert "ended" == outcome and attempts >= 2
