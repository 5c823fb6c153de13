"""The drill's targets for one run: what it starts itself (enforcer, PostgreSQL with its sink,
the example service, Chromium) or is pointed at (a running enforcer, any service URL with the
documented HTTP contract), all stopped again on exit; and the late second service."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from sessionwarden.audit.drill.audit import Attempt
from sessionwarden.audit.drill.drivers import BrowserDriver, Target, http_session, run_async
from sessionwarden.audit.drill.idp import IdpLayer, open_idp
from sessionwarden.audit.drill.options import DRILL_POLICY, DrillOptions
from sessionwarden.audit.drill.plan import PlanOptions, idp_plan
from sessionwarden.audit.drill.stack import (
    FrozenService,
    start_enforcer,
    start_sink,
    start_transmitter,
)
from sessionwarden.config.settings import Settings
from sessionwarden.kafka.topics import admin_client, delete_topics, ensure_topics, topic_specs
from sessionwarden.policy import Policy
from sessionwarden.testing.example import Service

if TYPE_CHECKING:
    from sessionwarden.audit.drill.plan import SessionPlan


@dataclass
class Stack:
    base: str
    path: str
    service: Service | None  # the example service, when the drill started it
    pg_dsn: str | None  # the application role's DSN, when the database layer is driven
    browser: BrowserDriver | None
    frozen: FrozenService | None = None  # the service whose listener the drill cuts off
    gateway: str | None = None  # nginx in front of an upstream, asking the gate (its base URL)
    idp: IdpLayer | None = None  # Keycloak, a realm of the drill's and a relying party
    ssf: dict[str, str] | None = None  # relying parties fed by SSF: case name -> base URL


@contextlib.contextmanager
def open_stack(
    settings: Settings, options: DrillOptions, policy: Policy, say: Callable[[str], None]
) -> Iterator[Stack]:
    policy_file = settings.policy_file or DRILL_POLICY
    specs = topic_specs(settings, policy.max_absolute)
    admin = admin_client(settings)
    ensure_topics(admin, specs, report=lambda _: None)
    with contextlib.ExitStack() as stop:
        if options.own_topics:
            stop.callback(delete_topics, admin, [s.name for s in specs])
        if options.start_enforcer:
            stop.callback(start_enforcer(settings, policy_file, options.workdir).stop)
            say("drill: enforcer started")
        pg_dsn = None
        if options.pg_sessions > 0:
            pg_dsn = _database(stop, settings, options, policy_file, say)
        service = None
        base = options.url
        if base is None:
            service = Service(settings, policy, "acme", unprotected=options.unprotected,
                              page_script=options.page_script).start()  # fmt: skip
            stop.callback(service.stop)
            base = service.url
            say(f"drill: example service on {base}")
        browser = None
        if service is not None and options.browser_sessions > 0:
            browser = _browser(stop, base, options, say)
        frozen = None
        if service is not None and options.outage_sessions > 0:
            frozen = FrozenService(settings, policy_file, options.workdir, options.budget_s,
                                   service.session_key)  # fmt: skip
            stop.callback(frozen.stop)
        gateway = _gateway(stop, settings, options, say) if options.gateway else None
        idp = None
        if options.idp_sessions > 0:
            users = [p.user for p in idp_plan(PlanOptions(0), options.idp_sessions)]
            idp = open_idp(stop, settings, options, policy_file, users, say)
        ssf = _relying_parties(stop, settings, options, policy_file, say) if options.ssf else None
        yield Stack(base.rstrip("/"), options.path, service, pg_dsn, browser, frozen, gateway,
                    idp, ssf)  # fmt: skip


def _database(
    stop: contextlib.ExitStack, settings: Settings, options: DrillOptions, policy_file: Any,
    say: Callable[[str], None],
) -> str:  # fmt: skip

    from sessionwarden.testing.pg_cluster import TempCluster
    from sessionwarden.testing.pg_sandbox import Sandbox

    admin_dsn = options.pg_admin_dsn
    if admin_dsn is None:
        cluster = TempCluster().start()
        stop.callback(cluster.stop)
        admin_dsn = cluster.dsn()
    box = Sandbox.create(admin_dsn, f"sw_drill_{secrets.token_hex(4)}")
    stop.callback(box.drop)
    box.add_documents("acme", "statement")  # a row for the guard to judge
    if options.start_sink:
        stop.callback(start_sink(settings, policy_file, options.workdir, box.sink_dsn).stop)
        say("drill: PostgreSQL and its sink started")
    else:
        say("drill: PostgreSQL started WITHOUT its sink (weakened)")
    return box.app_dsn


def _gateway(
    stop: contextlib.ExitStack, settings: Settings, options: DrillOptions,
    say: Callable[[str], None],
) -> str | None:  # fmt: skip
    """nginx in front of an upstream with no Sessionwarden code, ``auth_request`` to a gate that
    reads the drill's session header (``unprotected``: paths nginx serves without asking)."""
    from sessionwarden.gate.service import start_gate
    from sessionwarden.sdk.listener import RevocationListener
    from sessionwarden.testing.nginx import Nginx, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        say(f"drill: gateway cases left out: {reason}")
        return None
    listener = RevocationListener.from_settings(settings)
    listener.start()
    stop.callback(listener.close)
    listener.wait_ready(30)
    gate_settings = settings.replace(
        gate_port=0, gate_session_from="header:x-session-id", gate_tenant_from="constant:acme"
    )
    gate = start_gate(gate_settings, listener)
    stop.callback(gate.close)
    nginx = Nginx(options.workdir / "nginx", gate.port, unprotected=options.gateway_unprotected)
    stop.callback(nginx.close)
    weakened = f" (WITHOUT the gate on {', '.join(options.gateway_unprotected)})"
    say(f"drill: nginx on {nginx.url}, asking the gate" + (
        weakened if options.gateway_unprotected else ""))  # fmt: skip
    return nginx.url


def _relying_parties(
    stop: contextlib.ExitStack, settings: Settings, options: DrillOptions, policy_file: Any,
    say: Callable[[str], None],
) -> dict[str, str]:  # fmt: skip
    """The SSF transmitter and two relying parties with no Sessionwarden code in their
    decisions, told of revocations only by its SETs: one it pushes to, one that polls it."""
    from sessionwarden.ssf.vocabulary import SESSION_REVOKED
    from sessionwarden.testing.pg_cluster import free_port
    from sessionwarden.testing.ssf import SsfClient, write_key_and_tokens
    from sessionwarden.testing.ssf_relying_party import RelyingParty

    workdir = options.workdir / "ssf"
    workdir.mkdir(parents=True, exist_ok=True)
    key_file, token_file, token = write_key_and_tokens(workdir, client="drill-rp")
    salt, port = secrets.token_hex(16), free_port()
    issuer = f"http://127.0.0.1:{port}"
    push_token = secrets.token_urlsafe(24)
    pushed = RelyingParty(issuer, "drill-rp", salt, push_token)
    stop.callback(pushed.close)
    polling = RelyingParty(issuer, "drill-rp", salt)
    stop.callback(polling.close)
    if not options.ssf_transmitter:
        say("drill: relying parties started WITHOUT the SSF transmitter (weakened)")
        return {"ssf-push": pushed.url, "ssf-poll": polling.url}
    stop.callback(start_transmitter(settings, policy_file, workdir, port, key_file, token_file,
                                    salt).stop)  # fmt: skip
    client = SsfClient(issuer, token)
    client.create_push(f"{pushed.url}/ssf/events", [SESSION_REVOKED], f"Bearer {push_token}")
    polling.poll_from(f"{issuer}/ssf/poll/{client.create_poll([SESSION_REVOKED])}", token)
    say(f"drill: SSF transmitter on {issuer}, pushing to {pushed.url}, polled by {polling.url}")
    return {"ssf-push": pushed.url, "ssf-poll": polling.url}


def _browser(
    stop: contextlib.ExitStack, base: str, options: DrillOptions, say: Callable[[str], None]
) -> BrowserDriver | None:
    from sessionwarden.testing.browser import chromium, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        say(f"drill: browser cases left out: {reason}")
        return None
    driver = BrowserDriver(stop.enter_context(chromium()), base, options.page_script)
    stop.callback(driver.close)
    return driver


def second_service_attempts(
    stack: Stack,
    settings: Settings,
    policy: Policy,
    tenant: str,
    plans: list[SessionPlan],
    ids: dict[str, str],
    record: Callable[[Attempt], None],
) -> None:
    """A second service started after every revocation, its listener rebuilt from the
    compacted topic: three tries per session, each must be refused."""
    assert stack.service is not None
    late = Service(settings, policy, tenant, session_key=stack.service.session_key).start()
    try:
        now = time.time()
        targets = [Target(p.label, ids[p.label], (now, now + 0.05, now + 0.1)) for p in plans]
        jobs = [partial(http_session, base=late.url, path=stack.path, case="second-service",
                        target=t, record=record) for t in targets]  # fmt: skip
        worker = threading.Thread(target=run_async, args=(jobs,))  # off Playwright's loop
        worker.start()
        worker.join()
    finally:
        late.stop()
