"""Run an ASGI app under uvicorn in a background thread (tests, benchmarks, embedding).

with ServerThread(app) as server:      # 127.0.0.1, a free port
    print(server.url)
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from sessionwarden.ops.serving import LIMITS
from sessionwarden.sdk.asgi import ASGIApp


class ServerThread:
    """uvicorn serving ``app`` on ``host:port`` (0: a free port) in a daemon thread."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, **options: Any):
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=options.pop("log_level", "warning"),
            lifespan=options.pop("lifespan", "on"),
            timeout_graceful_shutdown=options.pop("timeout_graceful_shutdown", 2),
            **{**LIMITS, **options},
        )
        self.host = host
        self.port = port
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
