"""The Shared Signals transmitter against the real broker and enforcer: a revocation becomes a
signed CAEP session-revoked SET, pushed to one receiver and polled by another; a receiver that
hangs holds back no other stream; a crash and a restart lose nothing and double nothing."""

from __future__ import annotations

import base64
import math
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sessionwarden.config.settings import Settings
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.ssf.tokens import read_unverified
from sessionwarden.ssf.vocabulary import SESSION_REVOKED, VERIFICATION
from sessionwarden.testing.nginx import free_port
from sessionwarden.testing.services import TransmitterProcess
from sessionwarden.testing.ssf import PushReceiver, SsfClient, write_key_and_tokens
from tests.integration.harness import (
    FAST_POLICY,
    REPO,
    EnforcerProcess,
    login_doc,
    logout_doc,
    wait_until,
)

REVOKED = [SESSION_REVOKED]


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    stub = PushReceiver()
    yield stub
    stub.close()


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify(token: bytes, jwks: dict) -> None:
    """Raises InvalidSignature unless the RS256 token verifies with the published key."""
    (key,) = jwks["keys"]
    public = rsa.RSAPublicNumbers(
        int.from_bytes(_b64(key["e"]), "big"), int.from_bytes(_b64(key["n"]), "big")
    ).public_key()
    signing_input, _, signature = token.rpartition(b".")
    public.verify(_b64(signature.decode()), signing_input, padding.PKCS1v15(), hashes.SHA256())


def _transmitter(settings: Settings, tmp_path: Path, port: int, **env: str) -> TransmitterProcess:
    key_file, token_file = tmp_path / "ssf-key.pem", tmp_path / "ssf-tokens"
    proc = TransmitterProcess(
        settings,
        port=port,
        state_dir=tmp_path / "ssf-state",
        key_file=key_file,
        token_file=token_file,
        policy=FAST_POLICY,
        cwd=REPO,
        **env,
    )
    proc.wait_assigned(60)
    return proc


def test_a_revocation_is_pushed_and_polled_as_a_signed_session_revoked_set(
    settings_factory: Callable[..., Settings], tmp_path: Path, receiver: PushReceiver
) -> None:
    """Receivers that push and receivers that poll both learn of a logout, signed with the key
    the JWKS publishes, with the revocation's effective time, each with its own jti."""
    settings = settings_factory()
    _, _, token = write_key_and_tokens(tmp_path)
    enforcer = EnforcerProcess(settings)
    tx = _transmitter(settings, tmp_path, free_port())
    try:
        enforcer.wait_assigned()
        client = SsfClient(tx.base, token)
        status, doc = SsfClient(tx.base, "not-a-token").call("GET", "/ssf/streams")
        assert (401, "invalid_token") == (status, doc["error"])
        pushed = client.create_push(receiver.url("/push"), REVOKED)
        polled = client.create_poll(REVOKED)
        # Both in the past: the enforcer dates an event at the earlier of its occurred_at and
        # its append time, so a logout stamped ahead of its append would end at the latter.
        t = time.time() - 1.0
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("ssf-1", "ssf-user", t, risk="low"))
            pub.publish(logout_doc("ssf-1", "ssf-user", t + 0.5))
        wait_until(lambda: receiver.accepted("/push"), 30, "a pushed SET")
        answer = client.poll(polled, maxEvents=10)  # a long poll: returns once one is queued
        status, jwks = client.call("GET", "/ssf/jwks")
        assert 200 == status
        (push,) = receiver.accepted("/push")
        ((poll_jti, poll_token),) = answer["sets"].items()
        for raw in (push.token, poll_token.encode()):
            _verify(raw, jwks)
            header, claims = read_unverified(raw)
            assert "secevent+jwt" == header["typ"] and "RS256" == header["alg"]
            assert (tx.base, "rp") == (claims["iss"], claims["aud"])
            event = claims["events"][SESSION_REVOKED]
            assert math.floor(t + 0.5) == event["event_timestamp"]
            assert "User logged out" == event["reason_admin"]["en"]
            assert {"user", "session", "tenant", "format"} == set(claims["sub_id"])
        assert push.jti != poll_jti  # one SET per stream
        # Acknowledged: gone; nothing else waits.
        assert {"sets": {}, "moreAvailable": False} == client.poll(
            polled, ack=[poll_jti], returnImmediately=True
        )
        # Verification events reach the push receiver too.
        assert 204 == client.call("POST", "/ssf/verify", {"stream_id": pushed, "state": "x1"})[0]
        wait_until(lambda: len(receiver.accepted("/push")) == 2, 20, "a verification SET")
        claims = read_unverified(receiver.accepted("/push")[1].token)[1]
        assert {VERIFICATION: {"state": "x1"}} == claims["events"]
        # Its counters, behind the metrics token like every process's.
        # The receiver has the SET before the transmitter has read its answer and counted it.
        metrics = tx.metrics_url()
        request = urllib.request.Request(
            f"{metrics.base}/metrics", headers={"Authorization": f"Bearer {metrics.token}"}
        )

        def scrape() -> str:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return str(answer.read().decode())

        delivered = "sessionwarden_ssf_transmitter_pushes_delivered_total 2.0"
        wait_until(lambda: delivered in scrape(), 10, "both pushes counted")
        text = scrape()
        assert delivered in text
        assert "sessionwarden_ssf_transmitter_polls_acknowledged_total 1.0" in text
    finally:
        tx.stop()
        enforcer.stop()


def test_a_hung_receiver_delays_no_other_stream_and_a_crash_loses_and_doubles_nothing(
    settings_factory: Callable[..., Settings], tmp_path: Path, receiver: PushReceiver
) -> None:
    """One relying party's outage must not hold back the others' revocations; a transmitter
    killed mid-retry resumes from its state: the waiting SET arrives with the same jti, the
    delivered one is not sent again."""
    settings = settings_factory()
    _, _, token = write_key_and_tokens(tmp_path)
    port = free_port()
    env = {
        "SESSIONWARDEN_SSF_TX_PUSH_TIMEOUT_S": "3",
        "SESSIONWARDEN_SSF_TX_PUSH_BACKOFF_MAX_S": "1",
    }
    enforcer = EnforcerProcess(settings)
    tx = _transmitter(settings, tmp_path, port, **env)
    receiver.modes["/down"] = "hang"
    try:
        enforcer.wait_assigned()
        client = SsfClient(tx.base, token)
        client.create_push(receiver.url("/down"), REVOKED)
        up_stream = client.create_push(receiver.url("/up"), REVOKED)
        t = time.time()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("ssf-2", "ssf-user", t, risk="low"))
            pub.publish(logout_doc("ssf-2", "ssf-user", t + 0.2))
        wait_until(lambda: receiver.accepted("/up"), 30, "the healthy stream's SET")
        assert 1 == receiver.hanging  # ... while the other receiver still holds its push
        receiver.modes["/down"] = "fail"
        receiver.release()
        wait_until(
            lambda: len([p for p in receiver.pushes if p.path == "/down"]) >= 2, 20, "retries"
        )
        tx.kill()  # a crash, mid-retry
        receiver.modes["/down"] = "ok"
        tx = _transmitter(settings, tmp_path, port, **env)
        wait_until(lambda: receiver.accepted("/down"), 30, "the SET after the restart")
        assert 204 == client.call("POST", "/ssf/verify", {"stream_id": up_stream})[0]
        wait_until(lambda: len(receiver.accepted("/up")) == 2, 20, "the verification SET")
    finally:
        tx.stop()
        enforcer.stop()
    down = [p for p in receiver.pushes if p.path == "/down"]
    assert 1 == len({p.jti for p in down})  # every retry, before and after the crash: one jti
    up = receiver.accepted("/up")
    # The delivered SET was not sent again after the restart: the next one is the verification.
    assert [SESSION_REVOKED, VERIFICATION] == [
        next(iter(read_unverified(p.token)[1]["events"])) for p in up
    ]
