"""Keycloak's Shared Signals transmitter feeds `sessionwarden ssf receive`: a user's logout in
Keycloak ends that session in the enforcer, an administrator's "sign out" of a user ends every
session of the user, each through a SET Keycloak signed and pushed (RFC 8935) and our receiver
verified against the keys of Keycloak's SSF metadata. The same through poll (RFC 8936), our
receiver polling with an OAuth access token it gets with its client credentials."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.keycloak import session_id_of
from sessionwarden.testing.keycloak_ssf import poll_stream, push_stream
from sessionwarden.testing.nginx import free_port
from sessionwarden.testing.services import SsfReceiverProcess
from tests.integration.harness import (
    LONG_POLICY,
    Collector,
    EnforcerProcess,
    login_doc,
    service_env,
    wait_until,
)

pytestmark = pytest.mark.keycloak


def test_keycloak_logouts_end_sessions_through_the_ssf_receiver(
    keycloak: Any, tmp_path: Path
) -> None:
    realm = keycloak.realm(listener=False)  # only the SETs may end these sessions
    port = free_port()
    push_token = secrets.token_urlsafe(24)
    stream = push_stream(
        keycloak.admin, keycloak.server.base_url, realm.name,
        f"http://127.0.0.1:{port}/ssf/push", f"Bearer {push_token}",
    )  # fmt: skip
    token_file = tmp_path / "push.token"
    token_file.write_text(push_token + "\n")
    settings = keycloak.settings()
    transmitter = {
        "name": "keycloak", "issuer": stream.issuer, "metadata_url": stream.metadata_url,
        "audience": stream.audience, "tenant": realm.name, "delivery": "push",
        "push_token_file": str(token_file),
    }  # fmt: skip
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    enforcer = EnforcerProcess(settings, policy=LONG_POLICY)
    receiver = SsfReceiverProcess(
        ["-m", "sessionwarden", "ssf", "receive", "--port", str(port)],
        {
            **service_env(settings, LONG_POLICY),
            "SESSIONWARDEN_SSF_RECEIVER_METRICS_PORT": "0",
            "SESSIONWARDEN_SSF_RECEIVER_TRANSMITTERS": orjson.dumps([transmitter]).decode(),
        },
    )
    tokens = keycloak.server.tokens(realm.name)
    try:
        enforcer.wait_assigned()
        receiver.wait_for(receiver.is_ready, 30)

        def login(user: str) -> tuple[str, str]:
            status, body = tokens.password(realm.test_client, user, realm.password)
            assert 200 == status, body
            return session_id_of(body["access_token"]), body["refresh_token"]

        (alice_sid, alice_refresh), (bob1, _), (bob2, _) = (
            login("alice"),
            login("bob"),
            login("bob"),
        )
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            for sid, user in ((alice_sid, "alice"), (bob1, "bob"), (bob2, "bob")):
                pub.publish(login_doc(sid, realm.users[user], time.time(), tenant=realm.name))

        def started() -> set[str]:
            return {d["session_id"] for d in audit.docs(type="session_started", tenant=realm.name)}

        wait_until(lambda: {alice_sid, bob1, bob2} <= started(), 30, "three sessions started")

        def ended() -> dict[str, dict[str, Any]]:
            return {d["session_id"]: d for d in audit.docs(type="session_ended", tenant=realm.name)}

        # Alice logs out in Keycloak: that session ends here.
        t0 = time.monotonic()
        assert 204 == tokens.logout(realm.test_client, alice_refresh)[0]
        wait_until(lambda: alice_sid in ended(), 60, "alice's session ended by Keycloak's SET")
        logout_s = time.monotonic() - t0

        # An administrator signs bob out of all sessions: both end here.
        t0 = time.monotonic()
        keycloak.admin.call("POST", f"/{realm.name}/users/{realm.users['bob']}/logout")
        wait_until(lambda: {bob1, bob2} <= set(ended()), 60, "bob's sessions ended")
        admin_s = time.monotonic() - t0

        got = {sid: (d["reason"], d.get("signal"), d.get("source")) for sid, d in ended().items()}
        assert {
            alice_sid: ("signal", "session_revoked", "ssf:keycloak"),
            bob1: ("signal", "sessions_revoked", "ssf:keycloak"),
            bob2: ("signal", "sessions_revoked", "ssf:keycloak"),
        } == got
        assert {alice_sid, bob1, bob2} <= {d["session_id"] for d in revocations.docs()}
        print(
            f"Keycloak logout -> session ended: {logout_s:.2f} s; admin sign-out: {admin_s:.2f} s"
        )
    finally:
        receiver.stop()
        enforcer.stop()
        revocations.close()
        audit.close()


def test_our_receiver_polls_keycloak_with_a_client_credentials_token(
    keycloak: Any, tmp_path: Path
) -> None:
    """Keycloak's poll endpoint wants an access token of the receiver client: the receiver
    gets one from the realm's token endpoint, and the SET of a logout ends the session."""
    realm = keycloak.realm(listener=False)  # only the SETs may end these sessions
    stream = poll_stream(keycloak.admin, keycloak.server.base_url, realm.name)
    secret_file = tmp_path / "client.secret"
    secret_file.write_text(stream.client_secret + "\n")
    realm_url = f"{keycloak.server.base_url}/realms/{realm.name}"
    settings = keycloak.settings()
    transmitter = {
        "name": "keycloak-poll", "issuer": stream.issuer, "metadata_url": stream.metadata_url,
        "audience": stream.audience, "tenant": realm.name, "delivery": "poll",
        "poll_url": stream.endpoint_url,
        "poll_token_url": f"{realm_url}/protocol/openid-connect/token",
        "poll_client_id": stream.client_id, "poll_client_secret_file": str(secret_file),
        "poll_scope": "ssf.read",
    }  # fmt: skip
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    enforcer = EnforcerProcess(settings, policy=LONG_POLICY)
    receiver = SsfReceiverProcess(
        ["-m", "sessionwarden", "ssf", "receive"],
        {
            **service_env(settings, LONG_POLICY),
            "SESSIONWARDEN_SSF_RECEIVER_METRICS_PORT": "0",
            "SESSIONWARDEN_SSF_RECEIVER_POLL_INTERVAL_S": "0.5",
            "SESSIONWARDEN_SSF_RECEIVER_TRANSMITTERS": orjson.dumps([transmitter]).decode(),
        },
    )
    tokens = keycloak.server.tokens(realm.name)
    try:
        enforcer.wait_assigned()
        receiver.wait_for("ssf receiver polling", 30)
        status, body = tokens.password(realm.test_client, "alice", realm.password)
        assert 200 == status, body
        sid = session_id_of(body["access_token"])
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc(sid, realm.users["alice"], time.time(), tenant=realm.name))
        wait_until(
            lambda: sid in {d["session_id"] for d in audit.docs(type="session_started")},
            30,
            "the session started",
        )
        t0 = time.monotonic()
        assert 204 == tokens.logout(realm.test_client, body["refresh_token"])[0]

        def ended() -> dict[str, dict[str, Any]]:
            return {d["session_id"]: d for d in audit.docs(type="session_ended", tenant=realm.name)}

        wait_until(lambda: sid in ended(), 60, "the session ended by a polled SET")
        doc = ended()[sid]
        assert ("signal", "session_revoked", "ssf:keycloak-poll") == (
            doc["reason"], doc.get("signal"), doc.get("source"),
        )  # fmt: skip
        assert not receiver.said(stream.client_secret)
        print(f"Keycloak logout -> polled SET -> session ended: {time.monotonic() - t0:.2f} s")
    finally:
        receiver.stop()
        enforcer.stop()
        audit.close()
