"""`sessionwarden ssf receive` against a real enforcer: a SET pushed (RFC 8935) or polled
(RFC 8936) ends the session, or every session of the user, in the enforcer; every refused SET
(unsigned, wrongly signed, too old, replayed, for another audience, issuer or tenant, or sent
without the transmitter's token) is answered with its RFC 8935 code and never reaches
auth.events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.ssf import vocabulary as v
from sessionwarden.testing.services import SsfReceiverProcess
from sessionwarden.testing.ssf_transmitter import SsfTransmitterStub, new_signer, push
from tests.integration.harness import (
    LONG_POLICY,
    Collector,
    EnforcerProcess,
    login_doc,
    service_env,
    wait_until,
)

AUDIENCE = "https://sessionwarden.test/ssf"
PUSH_TOKEN = "push-token-of-the-idp-0123456789"
ROGUE_TOKEN = "push-token-of-the-globex-idp-0123"
POLL_TOKEN = "poll-token-of-the-poll-idp-012345"


def subject(user: str, session: str | None = None, tenant: str = "acme") -> dict[str, Any]:
    found: dict[str, Any] = {"format": "complex", "user": {"format": "opaque", "id": user}}
    if session is not None:
        found["session"] = {"format": "opaque", "id": session}
    found["tenant"] = {"format": "opaque", "id": tenant}
    return found


@pytest.fixture
def stubs() -> Iterator[tuple[SsfTransmitterStub, SsfTransmitterStub]]:
    pushing = SsfTransmitterStub(poll_token="unused-poll-token-0123456789").start()
    polled = SsfTransmitterStub(poll_token=POLL_TOKEN).start()
    yield pushing, polled
    pushing.close()
    polled.close()


def transmitters(
    tmp_path: Path, pushing: SsfTransmitterStub, polled: SsfTransmitterStub
) -> list[dict[str, Any]]:
    files = {}
    for name, token in (("push", PUSH_TOKEN), ("rogue", ROGUE_TOKEN), ("poll", POLL_TOKEN)):
        files[name] = tmp_path / f"{name}.token"
        files[name].write_text(token + "\n")
    return [
        {"name": "idp", "issuer": pushing.issuer, "jwks_uri": f"{pushing.base}/jwks",
         "audience": AUDIENCE, "tenant": "acme", "delivery": "push",
         "push_token_file": str(files["push"])},
        # The same keys and issuer, but mapped to another tenant: it may not touch acme.
        {"name": "globex-idp", "issuer": pushing.issuer, "jwks_uri": f"{pushing.base}/jwks",
         "audience": AUDIENCE, "tenant": "globex", "delivery": "push",
         "push_token_file": str(files["rogue"])},
        {"name": "poll-idp", "issuer": polled.issuer,
         "metadata_url": f"{polled.base}/.well-known/ssf-configuration",
         "audience": AUDIENCE, "tenant": "acme", "delivery": "poll",
         "poll_url": f"{polled.base}/poll", "poll_token_file": str(files["poll"])},
    ]  # fmt: skip


def test_signals_pushed_and_polled_end_sessions_and_refused_ones_change_nothing(
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
    stubs: tuple[SsfTransmitterStub, SsfTransmitterStub],
) -> None:
    pushing, polled = stubs
    settings = settings_factory()
    inputs = Collector(settings.kafka.bootstrap_servers, settings.topics.input)
    audit = Collector(settings.kafka.bootstrap_servers, settings.topics.audit)
    revocations = Collector(settings.kafka.bootstrap_servers, settings.topics.revocations)
    enforcer = EnforcerProcess(settings, policy=LONG_POLICY)
    receiver = SsfReceiverProcess(
        ["-m", "sessionwarden", "ssf", "receive", "--port", "0"],
        {
            **service_env(settings, LONG_POLICY),
            "SESSIONWARDEN_SSF_RECEIVER_METRICS_PORT": "0",
            "SESSIONWARDEN_SSF_RECEIVER_POLL_INTERVAL_S": "0.2",
            "SESSIONWARDEN_SSF_RECEIVER_JTI_FILE": str(tmp_path / "jti.jsonl"),
            "SESSIONWARDEN_SSF_RECEIVER_TRANSMITTERS": orjson.dumps(
                transmitters(tmp_path, pushing, polled)
            ).decode(),
        },
    )
    try:
        enforcer.wait_assigned()
        receiver.wait_for(receiver.is_ready, 30)
        url = receiver.push_url()
        now = time.time()
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            for session, user in (("s-1", "u-1"), ("s-2", "u-2"), ("s-3", "u-2"), ("s-4", "u-4")):
                pub.publish(login_doc(session, user, now))
        wait_until(lambda: len(audit.docs(type="session_started")) == 4, 30, "four sessions")
        wait_until(lambda: len(inputs.docs()) == 4, 30, "the logins on auth.events")

        def revoked(session: str) -> str:
            return pushing.sign(
                pushing.claims(v.SESSION_REVOKED, subject("u-1", session), AUDIENCE, time.time())
            )

        # Every refusal, with its code; none reaches auth.events.
        other_key = new_signer()
        stale = pushing.claims(v.SESSION_REVOKED, subject("u-1", "s-1"), AUDIENCE, now - 3600)
        refusals = {
            "unsigned": (PUSH_TOKEN, pushing.unsigned(pushing.claims(
                v.SESSION_REVOKED, subject("u-1", "s-1"), AUDIENCE, now)), "invalid_request"),
            "wrongly signed": (PUSH_TOKEN, pushing.sign(
                pushing.claims(v.SESSION_REVOKED, subject("u-1", "s-1"), AUDIENCE, now),
                other_key), "invalid_key"),
            "too old": (PUSH_TOKEN, pushing.sign(stale), "invalid_request"),
            "foreign audience": (PUSH_TOKEN, pushing.sign(pushing.claims(
                v.SESSION_REVOKED, subject("u-1", "s-1"), "https://elsewhere", now)),
                "invalid_audience"),
            "foreign issuer": (PUSH_TOKEN, pushing.sign({**pushing.claims(
                v.SESSION_REVOKED, subject("u-1", "s-1"), AUDIENCE, now),
                "iss": "https://evil.test"}), "invalid_issuer"),
            "foreign tenant": (ROGUE_TOKEN, revoked("s-1"), "access_denied"),
            "no transmitter token": ("not-a-transmitter-token", revoked("s-1"),
                                     "authentication_failed"),
        }  # fmt: skip
        for case, (bearer, token, code) in refusals.items():
            status, body = push(url, bearer, token)
            expected = (code, 401 if code == "authentication_failed" else 400)
            assert expected == (body.get("err"), status), case

        # Accepted: s-1 ends; the same SET again is a replay.
        accepted = revoked("s-1")
        assert (202, {}) == push(url, PUSH_TOKEN, accepted)
        status, body = push(url, PUSH_TOKEN, accepted)
        assert (400, "invalid_request") == (status, body["err"])
        wait_until(lambda: revocations.docs(session_id="s-1"), 30, "s-1 revoked")

        # Polled: u-2's account disabled ends s-2 and s-3; a forged SET goes back in setErrs.
        disabled = polled.sign(
            polled.claims(v.ACCOUNT_DISABLED, subject("u-2"), AUDIENCE, time.time())
        )
        forged = polled.sign(
            polled.claims(v.ACCOUNT_DISABLED, subject("u-4"), AUDIENCE, time.time()), other_key
        )
        good_jti, forged_jti = polled.queue(disabled), polled.queue(forged)
        wait_until(lambda: good_jti in polled.acks, 30, "the polled SET acknowledged")
        wait_until(lambda: forged_jti in polled.errors, 30, "the forged SET reported")
        assert "invalid_key" == polled.errors[forged_jti]["err"]
        wait_until(
            lambda: {"s-2", "s-3"} <= {d["session_id"] for d in revocations.docs()},
            30, "u-2's sessions revoked",
        )  # fmt: skip

        # auth.events holds the four logins and the two accepted signals, nothing else (an
        # event is published before its SET is answered or acknowledged).
        sources = sorted(
            (d["type"], d.get("source", "")) for d in inputs.docs() if d["type"] != "login"
        )
        assert [("session_revoked", "ssf:idp"), ("user_revoked", "ssf:poll-idp")] == sources
        assert [] == revocations.docs(session_id="s-4")
        wait_until(lambda: len(audit.docs(type="session_ended")) == 3, 30, "three ends audited")
        ended = {(d["session_id"], d["reason"], d.get("signal"), d.get("source"))
                 for d in audit.docs(type="session_ended")}  # fmt: skip
        assert {
            ("s-1", "signal", "session_revoked", "ssf:idp"),
            ("s-2", "signal", "account_disabled", "ssf:poll-idp"),
            ("s-3", "signal", "account_disabled", "ssf:poll-idp"),
        } == ended
    finally:
        receiver.stop()
        enforcer.stop()
        for collector in (inputs, audit, revocations):
            collector.close()


def test_a_transmitter_whose_keys_trickle_does_not_delay_another_transmitters_sets(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """Its SETs force a fetch of its JWKS (held up to the fetch's 5 s deadline, again a second
    later while its keys are missing); the other transmitter's SETs are still published and
    answered within a bound far below that: each transmitter is decided on its own thread."""
    slow = SsfTransmitterStub(poll_token="unused-poll-token-0123456789", trickle_jwks=True)
    fast = SsfTransmitterStub(poll_token="unused-poll-token-9876543210")
    tokens = {"slow": "push-token-of-the-slow-idp-01234", "fast": "push-token-of-the-fast-idp-0123"}
    config = []
    for name, stub in (("slow", slow.start()), ("fast", fast.start())):
        (tmp_path / f"{name}.token").write_text(tokens[name] + "\n")
        config.append(
            {"name": name, "issuer": stub.issuer, "jwks_uri": f"{stub.base}/jwks",
             "audience": AUDIENCE, "tenant": "acme", "delivery": "push",
             "push_token_file": str(tmp_path / f"{name}.token")}
        )  # fmt: skip
    settings = settings_factory()
    inputs = Collector(settings.kafka.bootstrap_servers, settings.topics.input)
    receiver = SsfReceiverProcess(
        ["-m", "sessionwarden", "ssf", "receive", "--port", "0"],
        {
            **service_env(settings, LONG_POLICY),
            "SESSIONWARDEN_SSF_RECEIVER_METRICS_PORT": "0",
            "SESSIONWARDEN_SSF_RECEIVER_TRANSMITTERS": orjson.dumps(config).decode(),
        },
    )
    stop = threading.Event()
    slow_answers: list[int] = []

    def keep_slow_busy(url: str) -> None:
        while not stop.is_set():
            token = slow.sign(slow.claims(v.SESSION_REVOKED, subject("u-9", "s-9"), AUDIENCE,
                                          time.time()))  # fmt: skip
            slow_answers.append(push(url, tokens["slow"], token, timeout=30)[0])

    try:
        receiver.wait_for(receiver.is_ready, 30)
        url = receiver.push_url()
        warm = fast.sign(fast.claims(v.SESSION_REVOKED, subject("u-0", "s-0"), AUDIENCE,
                                     time.time()))  # fmt: skip
        assert (202, {}) == push(url, tokens["fast"], warm)  # its keys loaded, Kafka warm
        busy = threading.Thread(target=keep_slow_busy, args=(url,), daemon=True)
        busy.start()
        assert slow.jwks_asked.wait(10), "the slow transmitter's keys were never asked for"
        took: list[float] = []
        for i in range(1, 9):  # ~8 s: the slow keys' fetch is tried twice meanwhile, at least
            token = fast.sign(fast.claims(v.SESSION_REVOKED, subject(f"u-{i}", f"s-{i}"),
                                          AUDIENCE, time.time()))  # fmt: skip
            started = time.monotonic()
            answer = push(url, tokens["fast"], token)
            took.append(time.monotonic() - started)
            assert (202, {}) == answer, i
            stop.wait(1.0)
        assert max(took) < 1.5, took  # on one thread for all: up to 5 s each
        wait_until(
            lambda: len([d for d in inputs.docs() if d.get("source") == "ssf:fast"]) == 9,
            30, "the fast transmitter's nine events on auth.events",
        )  # fmt: skip
        stop.set()
        busy.join(15)
        assert slow_answers and set(slow_answers) == {503}, slow_answers
        assert [] == [d for d in inputs.docs() if d.get("source") == "ssf:slow"]
    finally:
        stop.set()
        receiver.stop()
        inputs.close()
        slow.close()
        fast.close()
