"""The gateway check behind a real nginx (Debian's package, `make nginx`) in front of an
upstream with no Sessionwarden code: revocations on the real broker reach nginx's answers."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.gate.service import start_gate
from sessionwarden.sdk.listener import ListenerError, RevocationListener
from sessionwarden.testing.nginx import Nginx, unavailable_reason
from tests.integration.harness import FAST_POLICY, ServiceProcess, service_env, wait_until

pytestmark = pytest.mark.integration
COOKIE = "sessionwarden_session"


@pytest.fixture(autouse=True)
def _nginx_here() -> None:
    """Skip where nginx is missing; under CI a missing nginx fails, never skips."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"gateway tests need nginx: {reason}")
        pytest.skip(f"gateway tests need nginx: {reason}")


def get(url: str, session: str | None, tenant: str = "acme") -> tuple[int, str, str]:
    """(status, X-Sessionwarden-Reason, body) of one request through nginx."""
    headers = {"X-Tenant": tenant}
    if session is not None:
        headers["Cookie"] = f"{COOKIE}={session}"
    try:
        with urlopen(Request(f"{url}/orders", headers=headers), timeout=5) as response:
            return (
                response.status,
                response.headers.get("X-Sessionwarden-Reason", ""),
                (response.read().decode()),
            )
    except HTTPError as exc:
        return exc.code, exc.headers.get("X-Sessionwarden-Reason", ""), ""


def revoke(settings: Settings, tenant: str, session_id: str) -> None:
    now = datetime.now(UTC)
    record = Revocation(
        revocation_id=uuid.uuid4(), session_id=session_id, user_id="u-gw", tenant=tenant,
        reason="idle_timeout", effective_at=now, emitted_at=now, roles=[], permissions=[],
        policy_version="it",
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    producer.produce(settings.topics.revocations, encode(record), f"{tenant}:{session_id}")
    assert 0 == producer.flush(10)


@pytest.fixture
def gate_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        gate_port=0, gate_metrics_port=0, gate_tenants="acme", policy_file=FAST_POLICY
    )


def started_listener(settings: Settings) -> RevocationListener:
    """A listener of the test's fresh topic, started once the topic's leaders answer (a topic
    created a moment ago may have none yet)."""
    deadline = time.monotonic() + 30
    while True:
        listener = RevocationListener.from_settings(settings, staleness_budget_s=5.0)
        try:
            listener.start()
            break
        except ListenerError:
            listener.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert listener.wait_ready(15)
    return listener


@pytest.fixture
def listener(gate_settings: Settings) -> Iterator[RevocationListener]:
    listener = started_listener(gate_settings)
    yield listener
    listener.close()


def test_nginx_passes_a_live_session_and_refuses_it_after_its_revocation(
    gate_settings: Settings, listener: RevocationListener, tmp_path: Path
) -> None:
    """The issue's path: live -> 200 at the upstream; revoked on Kafka -> 401 at nginx, and the
    refused request never reaches the upstream."""
    registry = CollectorRegistry()
    gate = start_gate(gate_settings, listener, registry)
    nginx = Nginx(tmp_path / "nginx", gate.port)
    try:
        assert (200, "allowed", "upstream ok acme\n") == get(nginx.url, "s-live")
        revoke(gate_settings, "acme", "s-live")
        wait_until(lambda: get(nginx.url, "s-live")[0] == 401, 10, "nginx to refuse the session")
        served = nginx.upstream.served  # the polls before the revocation was applied got through
        refused = get(nginx.url, "s-live")
        other_tenant = get(nginx.url, "s-live-2", tenant="globex")
        same_id_elsewhere = get(nginx.url, "s-live-2")
        no_session = get(nginx.url, None)
        upstream_saw = nginx.upstream.served - served
    finally:
        nginx.close()
        gate.close()
    assert (401, "revoked", "") == refused
    assert (403, "wrong_tenant") == other_tenant[:2]
    assert (200, "allowed") == same_id_elsewhere[:2]
    assert (401, "no_session") == no_session[:2]
    assert 1 == upstream_saw, "only the live session of another id got through"
    assert 1 <= registry.get_sample_value(
        "sessionwarden_gate_verdicts_total", {"verdict": "refused", "reason": "revoked"}
    )


def test_a_stale_gate_refuses_every_session_at_nginx(
    gate_settings: Settings, listener: RevocationListener, tmp_path: Path
) -> None:
    """Fail-closed: a gate whose listener has stopped vouches for nobody (503 from nginx)."""
    registry = CollectorRegistry()
    gate = start_gate(gate_settings, listener, registry)
    nginx = Nginx(tmp_path / "nginx", gate.port)
    try:
        assert 200 == get(nginx.url, "s-1")[0]
        served = nginx.upstream.served
        listener.close()  # the listener's consumer is gone: nothing more is applied
        answer = get(nginx.url, "s-1")
        upstream_saw = nginx.upstream.served - served
    finally:
        nginx.close()
        gate.close()
    assert (503, "unavailable", 0) == (*answer[:2], upstream_saw)
    assert 1 == registry.get_sample_value(
        "sessionwarden_gate_verdicts_total", {"verdict": "refused", "reason": "stale"}
    )


class GateProcess(ServiceProcess):
    """`sessionwarden gate` in a subprocess."""

    name = "gate"
    ready_message = "gate serving"

    def __init__(self, settings: Settings, **env: str) -> None:
        super().__init__(
            ["-m", "sessionwarden", "gate", "--port", "0"],
            {
                **service_env(settings, FAST_POLICY),
                "SESSIONWARDEN_GATE_TENANTS": "acme",
                "SESSIONWARDEN_GATE_METRICS_PORT": "0",
                **env,
            },
        )

    def port(self) -> int:
        self.wait_assigned(30)
        for doc in self.messages():
            if doc.get("msg") == "gate serving":
                return int(doc["port"])
        raise AssertionError(self.log())


def test_a_gate_that_is_down_refuses_at_nginx_and_never_logs_a_raw_session_id(
    gate_settings: Settings, tmp_path: Path
) -> None:
    """The command as deployed: `sessionwarden gate` counts its verdicts on /metrics (token
    auth); killed, nginx refuses (503); its log (at DEBUG, where refusals are logged) names
    sessions by hash only."""
    gate = GateProcess(gate_settings, SESSIONWARDEN_LOG_LEVEL="DEBUG")
    try:
        nginx = Nginx(tmp_path / "nginx", gate.port())
        try:
            secret = f"s-raw-{uuid.uuid4().hex}"
            revoke(gate_settings, "acme", secret)
            wait_until(lambda: get(nginx.url, secret)[0] == 401, 15, "the revocation at nginx")
            before = nginx.upstream.served
            assert (200, "allowed") == get(nginx.url, "s-2")[:2]
            endpoint = gate.metrics_url()
            scrape = Request(f"{endpoint.base}/metrics",
                             headers={"Authorization": f"Bearer {endpoint.token}"})  # fmt: skip
            with urlopen(scrape, timeout=5) as response:
                metrics = response.read().decode()
            gate.kill()
            down = get(nginx.url, "s-2")
            served = nginx.upstream.served - before
        finally:
            nginx.close()
    finally:
        gate.stop()
    assert (503, "unavailable") == down[:2]
    assert 1 == served, "the live request only; none once the gate was down"
    assert 'sessionwarden_gate_verdicts_total{reason="revoked",verdict="refused"} 1.0' in metrics
    assert "sessionwarden_listener_revocations_total" in metrics
    assert any(d.get("msg") == "gate refused" for d in gate.messages()), gate.log()
    assert all(secret not in line for line in gate.lines)


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_hostile_requests_get_an_answer_and_the_gate_keeps_answering(
    gate_settings: Settings, listener: RevocationListener
) -> None:
    """Garbage, a header flood, a huge cookie, a body: an error status each, never a crash."""
    gate = start_gate(gate_settings, listener)
    try:
        cookie = f"Cookie: {COOKIE}=s-1\r\nX-Tenant: acme\r\n"
        answers = [
            raw(gate.port, b"\x00\xff garbage\r\n\r\n"),
            raw(gate.port, b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"),
            raw(gate.port, b"GET / HTTP/1.1\r\nCookie: " + b"a" * 70_000 + b"\r\n\r\n"),
            raw(gate.port, b"GET / HTTP/1.1\r\nCookie: x=" + b"a" * 9000 + b"\r\n\r\n"),
            raw(gate.port, f"POST / HTTP/1.1\r\n{cookie}Content-Length: 5\r\n\r\nhello".encode()),
        ]
        after = raw(gate.port, f"GET / HTTP/1.1\r\n{cookie}Connection: close\r\n\r\n".encode())
    finally:
        gate.close()
    statuses = [a.split(b" ", 2)[1] for a in answers]
    assert [b"400", b"431", b"431", b"401", b"200"] == statuses
    assert b"X-Sessionwarden-Reason: too_large" in answers[3]
    assert b"Connection: close" in answers[4], "the unread body never becomes a request"
    assert after.startswith(b"HTTP/1.1 200 ")


def test_a_gate_answers_fast_enough_to_sit_in_every_request(
    gate_settings: Settings, listener: RevocationListener
) -> None:
    """A smoke bound on the gate's own time (the bench measures it): 200 kept-alive checks."""
    from http.client import HTTPConnection

    gate = start_gate(gate_settings, listener)
    conn = HTTPConnection("127.0.0.1", gate.port, timeout=5)
    try:
        started = time.perf_counter()
        for _ in range(200):
            conn.request("GET", "/", headers={"Cookie": f"{COOKIE}=s-1", "X-Tenant": "acme"})
            response = conn.getresponse()
            response.read()
            assert 200 == response.status
        per_request = (time.perf_counter() - started) / 200
    finally:
        conn.close()
        gate.close()
    assert per_request < 0.02


class JwksServer:
    """The identity provider's JWKS endpoint, counting its fetches."""

    def __init__(self, body: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self
        self.fetches = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_nginx_with_the_session_in_a_jwt_verified_against_a_jwks_url(
    gate_settings: Settings, listener: RevocationListener, tmp_path: Path
) -> None:
    """Tenant and session from a Bearer JWT's claims, keys fetched from the issuer's URL once
    and cached; a revoked session in a valid token and an expired token are both refused."""
    from tests.unit.gate.tokens import jwks, sign

    idp = JwksServer(jwks())
    settings = gate_settings.replace(
        gate_session_from="jwt:sid", gate_tenant_from="jwt:tid", gate_user_from="jwt:sub",
        gate_jwks_url=idp.url, gate_jwt_issuer="https://idp.example", gate_jwt_audience="shop",
    )  # fmt: skip
    gate = start_gate(settings, listener)
    nginx = Nginx(tmp_path / "nginx", gate.port)

    def call(claims: dict[str, object], alg: str = "RS256") -> tuple[int, str]:
        now = time.time()
        token = sign({"iss": "https://idp.example", "aud": "shop", "exp": now + 60,
                      "tid": "acme", "sub": "alice", **claims}, alg)  # fmt: skip
        request = Request(f"{nginx.url}/orders", headers={"Authorization": f"Bearer {token}"})
        try:
            with urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except HTTPError as exc:
            return exc.code, exc.headers.get("X-Sessionwarden-Reason", "")

    try:
        live = [call({"sid": "s-jwt"}), call({"sid": "s-jwt"}, "ES256")]
        revoke(settings, "acme", "s-jwt")
        wait_until(lambda: call({"sid": "s-jwt"})[0] == 401, 10, "nginx to refuse the session")
        revoked = call({"sid": "s-jwt"})
        expired = call({"sid": "s-other", "exp": time.time() - 3600})
        other_tenant = call({"sid": "s-other", "tid": "globex"})
        fetches = idp.fetches
    finally:
        nginx.close()
        gate.close()
        idp.close()
    assert [(200, "upstream ok acme\n")] * 2 == live
    assert (401, "revoked") == revoked
    assert (401, "token_expired") == expired
    assert (403, "wrong_tenant") == other_tenant
    assert 1 == fetches, "the JWKS is cached"


def test_connections_beyond_the_cap_are_refused_and_idle_ones_are_closed(
    gate_settings: Settings, listener: RevocationListener
) -> None:
    """A client holding connections open cannot pile up the gate's threads."""
    from sessionwarden.gate.decision import Gate
    from sessionwarden.gate.server import GateMetrics, GateServer
    from sessionwarden.gate.service import rules_of
    from sessionwarden.ops.logs import SessionHasher

    gate = GateServer("127.0.0.1", 0, Gate(rules_of(gate_settings.gate), listener),
                      GateMetrics(CollectorRegistry()), SessionHasher("s"),
                      idle_timeout_s=3.0, max_connections=2).start()  # fmt: skip
    # The cap is asked while both held connections are open: 3 s of idle timeout leaves a
    # loaded machine room to send the third (with 1 s it could arrive after they closed).
    held = [socket.create_connection(("127.0.0.1", gate.port)) for _ in range(2)]
    try:
        wait_until(lambda: gate.connections == 2, 5, "both connections accepted")
        busy = raw(gate.port, b"GET / HTTP/1.1\r\n\r\n")
        for conn in held:  # closed by the gate after its idle timeout
            conn.settimeout(5)
            assert b"" == conn.recv(100)
        cookie = f"Cookie: {COOKIE}=s-1\r\nX-Tenant: acme\r\nConnection: close\r\n"
        after = raw(gate.port, f"GET / HTTP/1.1\r\n{cookie}\r\n".encode())
    finally:
        for conn in held:
            conn.close()
        gate.close()
    assert busy.startswith(b"HTTP/1.1 503 ") and b"X-Sessionwarden-Reason: busy" in busy
    assert after.startswith(b"HTTP/1.1 200 ")
