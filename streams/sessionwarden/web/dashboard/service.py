"""`sessionwarden dashboard`: wire the feed, the state and the web app, and serve with uvicorn."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from sessionwarden.config.settings import Settings
from sessionwarden.kafka.security import client_config
from sessionwarden.ops.logs import SessionHasher
from sessionwarden.ops.service_metrics import ServiceObserver
from sessionwarden.ops.tokens import read_token
from sessionwarden.sdk.asgi import ASGIApp
from sessionwarden.web.dashboard.actions import KafkaCommandSink, RevokeActions
from sessionwarden.web.dashboard.app import Pusher, dashboard_app
from sessionwarden.web.dashboard.feed import DashboardFeed
from sessionwarden.web.dashboard.view import DashboardState

log = logging.getLogger(__name__)


def create_app(settings: Settings, token: str, *, show_session_ids: bool = False) -> ASGIApp:
    """The dashboard's ASGI app; its lifespan starts and stops the Kafka feed."""
    from sessionwarden.detect.app import app_id

    show = (lambda s: s) if show_session_ids else SessionHasher(settings.logging.salt)
    state, lock, pusher = DashboardState(show_session=show), threading.Lock(), Pusher()
    feed = DashboardFeed(settings, state, lock, pusher.notify, detect_group=app_id(settings))
    metrics = ServiceObserver(
        settings, settings.metrics.dashboard_port, "sessionwarden_dashboard", lambda: feed.stats
    )
    feed.on_step = metrics.step

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        metrics.start()
        try:
            feed.start()
            metrics.ready()  # every record of the three topics is read from the beginning
            yield
        finally:
            feed.stop()
            metrics.close()

    actions = None
    if settings.dashboard.operator:
        sink = KafkaCommandSink(client_config(settings.kafka), settings.topics.commands)
        hasher = SessionHasher(settings.logging.salt)
        actions = RevokeActions(sink, settings.dashboard.operator, token, hasher)
    return dashboard_app(state, lock, token, pusher=pusher, lifespan=lifespan, actions=actions)


def serve(settings: Settings, token_file: Path | None, show_session_ids: bool) -> int:
    import uvicorn

    from sessionwarden.ops.serving import LIMITS

    token, generated = read_token(token_file)
    app = create_app(settings, token, show_session_ids=show_session_ids)
    host, port = settings.dashboard.host, settings.dashboard.port
    shown = f"http://{host}:{port}/" + (f"#token={token}" if generated else "")
    print(f"dashboard: {shown}", flush=True)
    if not generated:
        print(f"  (sign in with the token in {token_file})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", **LIMITS)
    return 0
