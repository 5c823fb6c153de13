"""Interop: SETs from `sessionwarden ssf transmit`, pushed and polled, are accepted by an SSF
receiver nobody here wrote: SGNL's caep.dev `secevent` library (Go), which verifies each
token's signature against our JWKS, its issuer, audience, single event and CAEP schema. The
receiver program is tests/interop/ssf-receiver, built by `make ssf-interop`."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.ssf.vocabulary import SESSION_REVOKED
from sessionwarden.testing.children import Child
from sessionwarden.testing.nginx import free_port
from sessionwarden.testing.services import TransmitterProcess
from sessionwarden.testing.ssf import SsfClient, write_key_and_tokens
from tests.integration.harness import (
    FAST_POLICY,
    REPO,
    EnforcerProcess,
    login_doc,
    logout_doc,
    wait_until,
)

CACHE = Path(os.environ.get("SESSIONWARDEN_CACHE", Path.home() / ".cache" / "sessionwarden"))
RECEIVER = CACHE / "interop" / "ssf-receiver"

pytestmark = pytest.mark.skipif(
    not os.access(RECEIVER, os.X_OK), reason=f"{RECEIVER} is not built (make ssf-interop)"
)


def _lines(child: Child) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in list(child.lines) if x.startswith("{")]


@pytest.fixture
def receivers() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.stop(5)


def test_sgnls_receiver_library_accepts_our_pushed_and_polled_sets_and_refuses_a_wrong_audience(
    settings_factory: Callable[..., Settings], tmp_path: Path, receivers: list[Child]
) -> None:
    """An independent implementation is the proof that our tokens are SSF, not just ours."""
    settings = settings_factory()
    key_file, token_file, token = write_key_and_tokens(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    enforcer = EnforcerProcess(settings)
    tx = TransmitterProcess(
        settings, port=port, state_dir=tmp_path / "state", key_file=key_file,
        token_file=token_file, policy=FAST_POLICY, cwd=REPO,
    )  # fmt: skip
    try:

        def receiver(*args: str) -> Child:
            common = ["-jwks", f"{base}/ssf/jwks", "-iss", base]
            child = Child([str(RECEIVER), *common, *args], name="ssf-receiver", watch="stdout")
            receivers.append(child)
            return child

        push = receiver("-mode", "push", "-aud", "rp")
        stranger = receiver("-mode", "push", "-aud", "someone-else")
        for child in (push, stranger):
            child.wait_for("listening", 20)
        addr = {
            c: next(x for x in c.lines if x.startswith("listening")).split()[1]
            for c in (push, stranger)
        }
        tx.wait_assigned(60)
        enforcer.wait_assigned()
        client = SsfClient(tx.base, token)
        client.create_push(f"http://{addr[push]}/events", [SESSION_REVOKED])
        client.create_push(f"http://{addr[stranger]}/events", [SESSION_REVOKED])
        polled = client.create_poll([SESSION_REVOKED])
        poller = receiver(
            "-mode", "poll", "-aud", "rp", "-poll", f"{base}/ssf/poll/{polled}",
            "-token", token, "-want", "1",
        )  # fmt: skip
        t = time.time() - 1.0  # in the past, so the logout ends at its occurred_at
        with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("interop-1", "interop-user", t, risk="low"))
            pub.publish(logout_doc("interop-1", "interop-user", t + 0.5))
        wait_until(lambda: _lines(push) and _lines(stranger), 30, "both push receivers' verdicts")
        assert 0 == poller.wait_exit(60), poller.tail()
        # The poller acknowledged what it accepted: nothing is left for the stream.
        assert {"sets": {}, "moreAvailable": False} == client.poll(polled, returnImmediately=True)
    finally:
        tx.stop()
        enforcer.stop()
    for got in (_lines(push), _lines(poller)):
        (verdict,) = got
        assert (True, SESSION_REVOKED, "complex") == (
            verdict["accepted"],
            verdict["event_type"],
            verdict["subject_format"],
        ), verdict
        assert math.floor(t + 0.5) == verdict["event_timestamp"]
        assert "user" == verdict["initiating_entity"]
    (refused,) = _lines(stranger)
    assert not refused["accepted"]
    assert "aud" in refused["error"]
