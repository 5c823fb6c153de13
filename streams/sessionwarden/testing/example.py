"""The example service (examples/service/app.py) in this process, for the drill, the tests and
the benchmarks: a real RevocationListener feeding its middleware and browser stream (a PushHub),
served by uvicorn on 127.0.0.1 and a free port.

    with ExampleService(settings, policy_file) as service:   # listener + hub + uvicorn
        session_id = service.issue()                        # the caller logs it in
"""

from __future__ import annotations

import importlib.util
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Self

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.outputs import Revocation
from sessionwarden.policy import Policy, load_policy
from sessionwarden.sdk.listener import RevocationListener
from sessionwarden.sdk.publisher import AsyncAuthEventPublisher
from sessionwarden.sdk.push import PushHub
from sessionwarden.testing.serve import ServerThread

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples/service/app.py"
SESSION_KEY = b"example-service-test-session-key"  # shared: a restarted service knows its sessions


class ServiceFailed(RuntimeError):
    """The example service could not be loaded or its listener did not catch up."""


def load_example() -> ModuleType:
    """examples/service/app.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("sessionwarden_example_app", EXAMPLE)
    if spec is None or spec.loader is None:
        raise ServiceFailed(f"cannot load the example service from {EXAMPLE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Service:
    """The example service on the settings' topics, in this process: a real RevocationListener
    (``listener``: more of its options) feeding a PushHub, served by uvicorn on 127.0.0.1 and
    ``port`` (0: a free one). ``publisher`` (on the input topic) makes ``/login`` real;
    ``unprotected`` and ``page_script`` are passed to its ``create_app`` (the weakened
    variants); ``session_key`` signs the sessions it issues (``issue()`` makes one; services
    given the same key accept each other's). ``revoked_at`` maps each session id to the wall
    time the listener applied its first revocation. A subclass that overrides
    ``on_revocation`` sees each record as it is applied."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        tenant: str,
        *,
        publisher: AsyncAuthEventPublisher | None = None,
        port: int = 0,
        listener: Mapping[str, Any] | None = None,
        session_key: bytes | None = None,
        **weakened: Any,
    ) -> None:
        example = load_example()
        self._example = example
        self.revoked_at: dict[str, float] = {}
        self.session_key = session_key if session_key is not None else secrets.token_bytes(32)
        self.tenant = tenant
        self.hub = PushHub()
        self.listener = RevocationListener.from_settings(
            settings, policy, on_revocation=self.on_revocation, **(listener or {})
        )
        self.hub.lookup = example.listener_lookup(self.listener)
        app = example.create_app(
            self.listener, self.hub, publisher, tenant, session_key=self.session_key, **weakened
        )
        self.server = ServerThread(app, port=port)

    def issue(self, user: str = "user") -> str:
        """A session id this service accepts as one it issued, from now until the listener's
        ``max_lifetime_s`` (the caller logs it in)."""
        issued: str = self._example.issue_session_id(self.session_key, user, self.tenant)
        return issued

    def on_revocation(self, record: Revocation) -> None:
        self.revoked_at.setdefault(record.session_id, time.time())
        self.hub.on_revocation(record)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Self:
        self.listener.start()
        if not self.listener.wait_ready(30):
            raise ServiceFailed("the service's revocation listener did not catch up in 30 s")
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.listener.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ExampleService(Service):
    """The example service with a real publisher on the input topic (so ``/login`` starts a
    session the enforcer tracks), under ``policy`` and the shared ``SESSION_KEY``.

    ``applied`` maps each session id to the wall-clock moment the listener applied its
    revocation (``is_revoked`` turned true), ``revocations`` to the record itself."""

    def __init__(
        self,
        settings: Settings,
        policy: Path,
        tenant: str = "acme",
        port: int = 0,
        **listener: Any,
    ) -> None:
        self.applied: dict[str, float] = {}
        self.revocations: dict[str, Revocation] = {}
        publisher = AsyncAuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input)
        super().__init__(
            settings, load_policy(policy), tenant, publisher=publisher, port=port,
            listener=listener, session_key=SESSION_KEY,
        )  # fmt: skip

    def on_revocation(self, record: Revocation) -> None:
        self.applied.setdefault(record.session_id, time.time())
        self.revocations.setdefault(record.session_id, record)
        super().on_revocation(record)
