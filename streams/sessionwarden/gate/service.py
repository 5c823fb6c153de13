"""`sessionwarden gate`: the gate built from the settings, its listener, /metrics, and the loop.

::

    listener = RevocationListener.from_settings(settings, staleness_budget_s=..., fail_closed=...)
    server = start_gate(settings, listener)   # serving on server.port
    ...
    server.close()
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry

from sessionwarden.config.settings import GateSettings, Settings
from sessionwarden.errors import ConfigError
from sessionwarden.gate.decision import Gate, GateRules, Source, Verifier
from sessionwarden.gate.server import GateMetrics, GateServer
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.sdk.asgi import RevocationView

log = logging.getLogger(__name__)


def rules_of(gate: GateSettings) -> GateRules:
    return GateRules(
        session=Source.parse(gate.session_from),
        tenant=Source.parse(gate.tenant_from),
        user=Source.parse(gate.user_from) if gate.user_from else None,
        token=Source.parse(gate.jwt_from),
        tenants=gate.tenant_list(),
        allow_anonymous=gate.allow_anonymous,
        max_header_bytes=gate.max_header_bytes,
    )


def verifier_of(gate: GateSettings) -> Verifier | None:
    """The JWT verifier the settings describe, or None when no source is a jwt: one."""
    rules = rules_of(gate)
    if not rules.uses_jwt:
        return None
    from sessionwarden.gate.jwt import Jwks, JwtRules, verify

    if gate.jwks_file is not None:
        if not gate.jwks_file.is_file():
            raise ConfigError(f"gate_jwks_file: no such file: {gate.jwks_file}")
        jwks = Jwks.from_file(gate.jwks_file, time.monotonic)
    else:
        jwks = Jwks.from_url(gate.jwks_url, gate.jwks_cache_s, time.monotonic)
    jwt_rules = JwtRules(
        algorithms=frozenset(gate.jwt_algorithms.split(",")),
        issuer=gate.jwt_issuer,
        audience=gate.jwt_audience,
        leeway_s=gate.jwt_leeway_s,
        max_bytes=gate.max_token_bytes,
    )

    def verifier(token: str, now: float) -> dict[str, Any]:
        return verify(token, jwks, jwt_rules, now)

    return verifier


def start_gate(
    settings: Settings, view: RevocationView, registry: CollectorRegistry | None = None
) -> GateServer:
    """The gate on ``settings.gate.host``/``port``, serving in a thread of its own."""
    gate = Gate(rules_of(settings.gate), view, verifier_of(settings.gate))
    metrics = GateMetrics(registry or CollectorRegistry())
    try:
        server = GateServer(
            settings.gate.host,
            settings.gate.port,
            gate,
            metrics,
            SessionHasher(settings.logging.salt),
        )
    except OSError as exc:
        raise ConfigError(
            f"gate: cannot listen on {settings.gate.host}:{settings.gate.port}: {exc.strerror}"
        ) from exc
    return server.start()


def serve(settings: Settings) -> int:
    """Run the gate until SIGTERM or SIGINT: the listener, the HTTP server, /metrics."""
    from sessionwarden.ops.server import serve_metrics
    from sessionwarden.sdk.listener import RevocationListener
    from sessionwarden.sdk.listener_metrics import ListenerCollector

    listener = RevocationListener.from_settings(
        settings,
        staleness_budget_s=settings.gate.staleness_budget_s,
        fail_closed=not settings.gate.fail_open,
    )
    listener.start()
    registry = CollectorRegistry()
    registry.register(ListenerCollector(listener))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = start_gate(settings, listener, registry)
    metrics = serve_metrics(settings, settings.metrics.gate_port, registry, None, "gate")
    log.info(
        "gate serving",
        extra={"host": server.host, "port": server.port, "topic": listener.topic,
               "fail_closed": listener.fail_closed},
    )  # fmt: skip
    print(f"gate: http://{server.host}:{server.port}/", flush=True)
    try:
        stop.wait()
    finally:
        server.close()
        if metrics is not None:
            metrics.close()
        listener.close()
    return 0
