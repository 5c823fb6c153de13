"""`sessionwarden ssf receive`: the receiver built from the settings, served until a signal.

::

    receiver = build(settings)          # the decisions, the publisher, the counters
    asyncio.run(run(settings, receiver))  # push endpoint (uvicorn), pollers, /metrics
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from sessionwarden import outbound
from sessionwarden.config.settings import Settings, TrustedTransmitter
from sessionwarden.errors import ConfigError
from sessionwarden.gate.jwt import MAX_JWKS_BYTES, REFETCH_MIN_S, Jwks
from sessionwarden.kafka.security import KafkaSecurity
from sessionwarden.ops.tokens import read_token
from sessionwarden.sdk.publisher import AsyncAuthEventPublisher
from sessionwarden.ssf.receiver.app import PUSH_PATH, push_app
from sessionwarden.ssf.receiver.bearer import Bearer, ClientCredentials, StaticBearer
from sessionwarden.ssf.receiver.intake import Intake, IntakeRules
from sessionwarden.ssf.receiver.lanes import Lanes
from sessionwarden.ssf.receiver.metrics import ReceiverMetrics
from sessionwarden.ssf.receiver.poller import Poller, PollTarget
from sessionwarden.ssf.receiver.replay import JtiJournal, JtiStore
from sessionwarden.ssf.receiver.taking import Receiving
from sessionwarden.ssf.receiver.verify import Trust

log = logging.getLogger(__name__)


def _get(url: str) -> bytes:
    body = outbound.fetch(url, timeout_s=5, max_bytes=MAX_JWKS_BYTES)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"{url}: larger than 1 MiB")
    return body


def jwks_fetch(
    transmitter: TrustedTransmitter, get: Callable[[str], bytes] = _get
) -> Callable[[], bytes]:
    """The transmitter's JWKS bytes: from ``jwks_uri``, or from the ``jwks_uri`` its SSF
    metadata names (read on each fetch, so a transmitter down at start is picked up later; its
    ``issuer`` must be the configured one)."""

    def fetch() -> bytes:
        if transmitter.jwks_uri:
            return get(transmitter.jwks_uri)
        metadata = orjson.loads(get(transmitter.metadata_url))
        if not isinstance(metadata, dict) or metadata.get("issuer") != transmitter.issuer:
            raise ValueError(f"{transmitter.metadata_url}: another issuer, or not SSF metadata")
        uri = metadata.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise ValueError(f"{transmitter.metadata_url}: no http(s) jwks_uri")
        return get(uri)

    return fetch


@dataclass
class Receiver:
    ctx: Receiving
    push_tokens: dict[str, str]
    polls: list[PollTarget]
    registry: CollectorRegistry
    publisher: AsyncAuthEventPublisher
    closers: list[Callable[[], None]] = field(default_factory=list)


def poll_bearer(t: TrustedTransmitter) -> Bearer:
    """The token file's token, or OAuth client credentials (the secret read from its file)."""
    if t.poll_token_file is not None:
        return StaticBearer(read_token(t.poll_token_file)[0])
    assert t.poll_client_secret_file is not None  # the settings' check guarantees it
    try:
        secret = read_token(t.poll_client_secret_file)[0]
    except ConfigError as exc:  # names the file, never its content
        raise ConfigError(f"transmitter {t.name}: poll_client_secret_file: {exc}") from None
    return ClientCredentials(
        t.poll_token_url, t.poll_client_id, secret, t.poll_scope, time.monotonic
    )


def build(settings: Settings) -> Receiver:
    """Everything but the sockets; ConfigError for unreadable token files or shared tokens."""
    section = settings.ssf_receiver
    if not section.transmitters:
        raise ConfigError("ssf_receiver_transmitters: no transmitter is configured")
    trusts = {
        t.name: Trust(
            name=t.name,
            issuer=t.issuer,
            audience=t.audience,
            tenant=t.tenant,
            jwks=Jwks(jwks_fetch(t), section.jwks_cache_s, time.monotonic, REFETCH_MIN_S),
            risk_profiles=dict(t.risk_profiles),
            session_revoked_scope=t.session_revoked_scope,
        )
        for t in section.transmitters
    }
    journal = JtiJournal(section.jti_file, time.time()) if section.jti_file else None
    issuers = len({t.issuer for t in section.transmitters})
    store = JtiStore(section.jti_capacity, journal, issuers)
    rules = IntakeRules(section.iat_window_s, section.leeway_s, section.max_body_bytes)
    registry = CollectorRegistry()
    metrics = ReceiverMetrics(registry, list(trusts))
    security = KafkaSecurity.from_settings(settings.kafka).librdkafka()
    publisher = AsyncAuthEventPublisher(
        settings.kafka.bootstrap_servers, settings.topics.input, **security
    )
    lanes = Lanes(trusts)
    ctx = Receiving(Intake(trusts, store, rules), publisher.publish, metrics, time.time, lanes)
    push_tokens: dict[str, str] = {}
    polls: list[PollTarget] = []
    for t in section.transmitters:
        if t.delivery == "push":
            token = read_token(t.push_token_file)[0]
            if token in push_tokens:
                raise ConfigError(f"transmitter {t.name}: its push token is another's too")
            push_tokens[token] = t.name
        else:
            polls.append(
                PollTarget(
                    t.name, t.poll_url, poll_bearer(t), section.poll_max_events,
                    section.poll_interval_s, section.max_body_bytes * 10,
                )
            )  # fmt: skip
    closers: list[Callable[[], None]] = [lanes.close]
    if journal is not None:
        closers.append(journal.close)
    return Receiver(ctx, push_tokens, polls, registry, publisher, closers)


async def run(settings: Settings, receiver: Receiver) -> int:
    """Serve until SIGTERM or SIGINT: the push endpoint (when a transmitter pushes), a poller
    per poll transmitter, /metrics."""
    import uvicorn

    from sessionwarden.ops.server import serve_metrics
    from sessionwarden.ops.serving import LIMITS

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics = serve_metrics(
        settings, settings.metrics.ssf_receiver_port, receiver.registry, None, "ssf-receiver"
    )
    await receiver.publisher.start()
    tasks = [asyncio.create_task(Poller(receiver.ctx, p).run(stop)) for p in receiver.polls]
    server: Any = None
    if receiver.push_tokens:
        section = settings.ssf_receiver
        try:
            sock = socket.create_server((section.host, section.port))
        except OSError as exc:
            raise ConfigError(
                f"ssf receiver: cannot listen on {section.host}:{section.port}: {exc.strerror}"
            ) from exc
        app = push_app(receiver.ctx, receiver.push_tokens, section.max_body_bytes)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", **LIMITS)
        server = uvicorn.Server(config)
        tasks.append(asyncio.create_task(_serve(server, sock, stop)))
        port = sock.getsockname()[1]
        log.info("ssf receiver serving", extra={"host": section.host, "port": port,
                                                "path": PUSH_PATH})  # fmt: skip
        print(f"ssf receiver: http://{section.host}:{port}{PUSH_PATH}", flush=True)
    for poll in receiver.polls:
        log.info("ssf receiver polling", extra={"transmitter": poll.transmitter})
    try:
        await stop.wait()
    finally:
        stop.set()
        if server is not None:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await receiver.publisher.close(10.0, strict=False)
        for close in receiver.closers:
            close()
        if metrics is not None:
            metrics.close()
    return 0


async def _serve(server: Any, sock: socket.socket, stop: asyncio.Event) -> None:
    try:
        await server.serve(sockets=[sock])
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            sock.close()
