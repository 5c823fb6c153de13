"""`sessionwarden ssf transmit`: wire the store, the Kafka reader, the pushers and the HTTP API,
and serve them with uvicorn."""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable

from sessionwarden.config.settings import Settings
from sessionwarden.errors import ConfigError
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ops.service_metrics import ServiceObserver
from sessionwarden.ops.tokens import read_token
from sessionwarden.ssf.tokens import read_key_file, signer_for
from sessionwarden.ssf.transmitter.app import AppContext, transmitter_app
from sessionwarden.ssf.transmitter.auth import Authorizer, Introspector, parse_token_file
from sessionwarden.ssf.transmitter.delivery import PushOutcome
from sessionwarden.ssf.transmitter.ingest import Ingest
from sessionwarden.ssf.transmitter.pusher import Pusher, PushOptions, post_set
from sessionwarden.ssf.transmitter.sets import SetMaker
from sessionwarden.ssf.transmitter.store import Store
from sessionwarden.ssf.transmitter.streams import Stream

log = logging.getLogger(__name__)


def authorizer(settings: Settings) -> Authorizer:
    """The token file and/or the introspection endpoint; at least one is required."""
    tx = settings.ssf_transmitter
    table = {}
    if tx.token_file is not None:
        try:
            table = parse_token_file(tx.token_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"ssf_tx_token_file: {exc.strerror}") from exc
    introspect = None
    if tx.introspection_url:
        secret_file = tx.introspection_secret_file
        if not tx.introspection_client_id or secret_file is None:
            raise ConfigError(
                "ssf_tx_introspection_url needs ssf_tx_introspection_client_id and "
                "ssf_tx_introspection_secret_file"
            )
        secret, _ = read_token(secret_file)
        introspect = Introspector(
            tx.introspection_url, tx.introspection_client_id, secret, time.time
        )
    if not table and introspect is None:
        raise ConfigError(
            "the SSF transmitter needs ssf_tx_token_file or ssf_tx_introspection_url: every "
            "stream management request carries a bearer token"
        )
    return Authorizer(table, introspect)


def set_maker(settings: Settings) -> SetMaker:
    tx = settings.ssf_transmitter
    if not tx.issuer:
        raise ConfigError("ssf_tx_issuer is required (the SETs' iss and the endpoints' base URL)")
    if tx.signing_key_file is None:
        raise ConfigError("ssf_tx_signing_key_file is required: SSF tokens are always signed")
    if not settings.logging.salt:
        raise ConfigError(
            "the SSF transmitter needs log_salt: session subjects are its keyed hash of the "
            "session id, which must stay the same across restarts"
        )
    pem = read_key_file("ssf_tx_signing_key_file", tx.signing_key_file)
    assert pem is not None
    return SetMaker(tx.issuer, signer_for(pem), tx.key_id, SessionHasher(settings.logging.salt))


def _ready_when(assigned: threading.Event, ready: Callable[[], None]) -> None:
    """/readyz turns ready once the Kafka reader has its partitions."""
    assigned.wait()
    ready()


def serve(settings: Settings) -> int:
    import uvicorn

    from sessionwarden.ops.serving import LIMITS

    tx = settings.ssf_transmitter
    maker, authorize = set_maker(settings), authorizer(settings)
    store = Store(tx.state_dir)
    stats: dict[str, float] = {}

    def pushed(_: Stream, outcome: PushOutcome) -> None:
        key = f"pushes_{outcome.kind}"
        stats[key] = stats.get(key, 0) + 1

    pusher = Pusher(
        store,
        PushOptions(tx.push_timeout_s, tx.push_backoff_max_s),
        time.time,
        send=functools.partial(post_set, allow_private=tx.allow_private_push),
        on_outcome=pushed,
    )

    def on_queued(stream_ids: set[str]) -> None:
        for stream_id in stream_ids:
            pusher.wake(stream_id)

    def on_change(stream_id: str) -> None:
        pusher.sync()
        pusher.wake(stream_id)

    metrics = ServiceObserver(
        settings,
        settings.metrics.ssf_tx_port,
        "sessionwarden_ssf_transmitter",
        lambda: {**stats, **ingest.stats},
    )
    ingest = Ingest(settings, store, maker, time.time, on_queued, on_step=metrics.step)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        metrics.start()
        pusher.sync()
        ingest.start()
        threading.Thread(
            target=_ready_when, args=(ingest.assigned, metrics.ready), daemon=True
        ).start()
        try:
            yield
        finally:
            ingest.close()
            pusher.close()
            store.close()
            metrics.close()

    ctx = AppContext(
        store=store,
        maker=maker,
        authorize=authorize,
        clock=time.time,
        on_change=on_change,
        key_id=tx.key_id,
        default_subjects=tx.default_subjects,
        keep_s=tx.retention_s,
        poll_wait_s=tx.poll_wait_s,
        max_streams=tx.max_streams,
        max_streams_per_client=tx.max_streams_per_client,
        allow_http_push=tx.allow_http_push,
        allow_private_push=tx.allow_private_push,
        stats=stats,
    )
    app = transmitter_app(ctx, lifespan=lifespan)
    family = socket.AF_INET6 if ":" in tx.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((tx.host, tx.port))
    port = sock.getsockname()[1]
    log.info(
        "ssf transmitter serving",
        extra={"host": tx.host, "port": port, "issuer": tx.issuer, "state": str(store.path)},
    )
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, **LIMITS)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0
