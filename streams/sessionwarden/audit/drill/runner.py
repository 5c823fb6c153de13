"""`sessionwarden drill`: start (or use) the targets, drive the planned sessions through every
enforcement point, audit the attempts, write the report. docs/DRILL.md explains the cases."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import aiohttp
import orjson

from sessionwarden.audit.drill import mass
from sessionwarden.audit.drill.audit import Attempt, Audit, Case, Deadline, audit
from sessionwarden.audit.drill.drivers import Target, http_session, run_async, websocket_session
from sessionwarden.audit.drill.idp import CASES as IDP_CASES
from sessionwarden.audit.drill.idp import Session, idp_threads
from sessionwarden.audit.drill.options import DRILL_POLICY, DrillOptions
from sessionwarden.audit.drill.plan import PlanOptions, SessionPlan, idp_plan, make_plan
from sessionwarden.audit.drill.report import document, plot, table
from sessionwarden.audit.drill.stack import FrozenService
from sessionwarden.audit.drill.targets import Stack, open_stack, second_service_attempts
from sessionwarden.config.settings import Settings
from sessionwarden.errors import SessionwardenError
from sessionwarden.kafka.security import KafkaSecurity
from sessionwarden.ops.stats import percentiles
from sessionwarden.policy import Policy
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.events import activity_doc, iso, login_doc, logout_doc

TENANT = "acme"
Job = Callable[[aiohttp.ClientSession], Awaitable[None]]


def cases(options: DrillOptions, stack: Stack) -> list[Case]:
    found = [Case("http-api", "http", "401 from the deadline on")]
    if stack.service is not None:
        found += [
            Case("http-page", "http", "401 from the deadline on"),
            Case("websocket", "websocket", "closed 4401, reconnects refused"),
            Case("second-service", "http", "401: bootstrapped from the compacted topic",
                 measured=False),
        ]  # fmt: skip
    if stack.gateway is not None:
        found.append(Case("gateway", "gateway", "401 at nginx from the deadline on"))
    if stack.ssf is not None:
        found += [Case(name, "ssf", "401 at the relying party once its SET is taken")
                  for name in stack.ssf]  # fmt: skip
    if stack.frozen is not None:
        found.append(Case("listener-outage", "http", "503 while stale, then 401; never 2xx",
                          measured=False))  # fmt: skip
    if stack.pg_dsn is not None:
        found += [Case("pg-kept-connection", "postgres", "terminated / 28000"),
                  Case("pg-transaction", "postgres", "28000 at the binding")]  # fmt: skip
    if stack.browser is not None:
        found += [Case("browser-tab", "browser", "content cleared, page logs out"),
                  Case("browser-second-tab", "browser", "content cleared too")]  # fmt: skip
    if stack.idp is not None:
        found += list(IDP_CASES)
    return found


class DrillError(SessionwardenError):
    """The drill could not drive its sessions (its events were not published)."""


def _planned(
    all_cases: list[Case], plans: list[SessionPlan], options: DrillOptions,
    idp_plans: Sequence[SessionPlan] = (),
) -> list[tuple[str, str]]:  # fmt: skip
    """Every (case, session) pair the drill drives: each must show attempts."""
    chosen = {"postgres": [p.label for p in plans[: options.pg_sessions]],
              "browser": _browser_labels(plans, options),
              "listener-outage": [p.label for p in _outage_plans(plans, options)],
              **{c.name: [p.label for p in idp_plans] for c in IDP_CASES}}  # fmt: skip
    every = [p.label for p in plans]
    return [(c.name, label) for c in all_cases
            for label in chosen.get(c.name, chosen.get(c.layer, every))]  # fmt: skip


def _outage_plans(plans: list[SessionPlan], options: DrillOptions) -> list[SessionPlan]:
    """The sessions revoked while the frozen service's listener is cut off: the last that
    idle out (nothing else is then still running, on a loaded machine least of all)."""
    return [p for p in plans if p.logout is None][-options.outage_sessions :]


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.ws_closed: dict[str, float] = {}  # label -> when the revoked close frame arrived
        self._lock = threading.Lock()

    def __call__(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def websocket_closed(self, label: str, at: float) -> None:
        with self._lock:
            self.ws_closed.setdefault(label, at)


def websocket_close_latency(
    closed: dict[str, float], revoked_at: dict[str, float], ids: dict[str, str]
) -> dict[str, Any]:
    """From the moment the service's listener applied a session's revocation to the moment
    its WebSocket's close frame (4401) reached the client, per session: count, p50, p99, max
    (ms; the target is p99 <= 100 ms)."""
    samples = [
        (at - revoked_at[ids[label]]) * 1000
        for label, at in closed.items()
        if ids.get(label) in revoked_at
    ]
    if not samples:
        return {"count": 0}
    p50, p99 = percentiles(samples, 50, 99)
    return {"count": len(samples), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
            "max_ms": round(max(samples), 1)}  # fmt: skip


def run_drill(
    settings: Settings, policy: Policy, options: DrillOptions, say: Callable[[str], None] = print
) -> tuple[Audit, dict[str, Any]]:
    """Run one drill; the audit and the JSON report (written with the table and the PNG)."""
    options.workdir.mkdir(parents=True, exist_ok=True)
    idle = policy.timeouts_for("customer", "medium").idle
    plan_options = PlanOptions(options.sessions, options.seed, idle, options.rate,
                               tolerance_s=options.tolerance_s)  # fmt: skip
    plans = make_plan(plan_options)
    idp_plans = idp_plan(plan_options, options.idp_sessions)
    record = Recorder()
    with open_stack(settings, options, policy, say) as stack:
        all_cases = cases(options, stack)
        say(f"drill: {len(plans)} sessions, cases: {', '.join(c.name for c in all_cases)}")
        # The example service accepts only sessions it issued; another service, its own ids.
        issue = stack.service.issue if stack.service is not None else _random_id
        ids = {p.label: issue() for p in plans}
        if stack.browser is not None:  # before the clock starts: pages are slow to open
            for label in _browser_labels(plans, options):
                why = stack.browser.open(label, ids[label])
                if why is not None:
                    say(f"drill: page not opened, its case is unproven: {why}")
        tokens: dict[str, Session] = {}
        tenants = dict.fromkeys(ids, TENANT)
        if stack.idp is not None:  # signed in before the clock starts: Keycloak is slow to
            for p in idp_plans:  # make users on a loaded machine
                tokens[p.label] = stack.idp.sign_in(p.user)
                ids[p.label], tenants[p.label] = tokens[p.label].sid, stack.idp.realm.name
        t0 = time.time() + 2.0
        deadlines = _drive(settings, stack, options, plans + idp_plans, ids, t0, record, say,
                           tenants, tokens)  # fmt: skip
        planned = _planned(all_cases, plans, options, idp_plans if stack.idp else [])
        closes: dict[str, Any] = {"count": 0}
        if stack.service is not None:
            closes = websocket_close_latency(record.ws_closed, stack.service.revoked_at, ids)
            second_service_attempts(stack, settings, policy, TENANT, plans, ids, record)
        revoked_all = None
        if options.mass_sessions > 0:  # after the cases: it ends every session of the tenant
            policy_file = settings.policy_file or DRILL_POLICY
            revoked_all = mass.run_mass(settings, stack, policy_file, TENANT,
                                        options.mass_sessions, say)  # fmt: skip
    result = audit(all_cases, deadlines, record.attempts, options.tolerance_s, planned)
    meta = {"sessions": options.sessions, "seed": options.seed, "policy": policy.name,
            "started_at": iso(t0), "attempts": len(record.attempts),
            "websocket_close": closes}  # fmt: skip
    doc = document(result, meta)
    if revoked_all is not None:
        doc["mass_revocation"] = mass.document(revoked_all)
    (options.workdir / "drill.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    text = table(result)
    if closes["count"]:
        text += (f"\nWebSocket close after the revocation was read (ms, {closes['count']} "
                 f"sockets): p50 {closes['p50_ms']:.0f}, p99 {closes['p99_ms']:.0f}, "
                 f"max {closes['max_ms']:.0f}")  # fmt: skip
    if revoked_all is not None:
        text += "\n" + mass.line(revoked_all)
    (options.workdir / "drill.txt").write_text(text + "\n")
    plot(result, options.workdir / "drill.png")
    return result, doc


def _drive(
    settings: Settings,
    stack: Stack,
    options: DrillOptions,
    plans: list[SessionPlan],
    ids: dict[str, str],
    t0: float,
    record: Recorder,
    say: Callable[[str], None],
    tenants: dict[str, str],
    tokens: dict[str, Session],
) -> dict[str, Deadline]:
    """Publish every session's events and drive its attempts; ``tokens`` are the Keycloak
    sessions' (the idp layer's plans, driven there only)."""
    every = [Target(p.label, ids[p.label], tuple(t0 + t for t in p.attempts)) for p in plans]
    targets = [t for t in every if t.label not in tokens]
    deadlines: dict[str, Deadline] = {}
    failed: list[BaseException] = []

    def publish() -> None:
        try:
            _publish(settings, plans, ids, t0, deadlines, tenants)
        except BaseException as exc:  # surfaced after the run: its sessions are unproven
            failed.append(exc)

    publisher = threading.Thread(target=publish, daemon=True)
    workers = [publisher, threading.Thread(target=run_async, args=(_jobs(stack, targets, record),))]
    if stack.idp is not None:
        workers += idp_threads(stack.idp, [t for t in every if t.label in tokens], tokens, record)
    if stack.pg_dsn is not None:
        from sessionwarden.audit.drill.drivers import postgres_session

        pg = [(stack.pg_dsn, TENANT, t, record) for t in targets[: options.pg_sessions]]
        workers += [threading.Thread(target=postgres_session, args=a) for a in pg]
    if stack.frozen is not None:
        main = [p for p in plans if p.label not in tokens]
        workers += _outage(stack.frozen, options, main, ids, t0, record)
    for w in workers:
        w.start()
    if stack.browser is not None:
        _drive_browser(stack, targets, record)
    for w in workers:
        w.join()
    if failed:
        raise DrillError(f"publishing the drill's events failed: {failed[0]}") from failed[0]
    return deadlines


def _outage(
    frozen: FrozenService,
    options: DrillOptions,
    plans: list[SessionPlan],
    ids: dict[str, str],
    t0: float,
    record: Recorder,
) -> list[threading.Thread]:
    """Freeze the service from 0.5 s before the first chosen deadline until the budget plus
    1.5 s after the last one; its sessions keep trying all along."""
    chosen = _outage_plans(plans, options)
    if not chosen:
        return []
    first = t0 + min(p.deadline for p in chosen) - 0.5
    last = t0 + max(p.deadline for p in chosen)
    freezer = threading.Thread(target=frozen.freeze,
                               args=(first, last - first + options.budget_s + 1.5))  # fmt: skip
    jobs: list[Job] = [
        partial(http_session, base=frozen.url, path="/api/data", case="listener-outage",
                target=Target(p.label, ids[p.label], tuple(t0 + t for t in p.attempts)),
                record=record) for p in chosen
    ]  # fmt: skip
    return [freezer, threading.Thread(target=run_async, args=(jobs,))]


def _jobs(stack: Stack, targets: list[Target], record: Recorder) -> list[Job]:
    jobs: list[Job] = []
    for t in targets:
        base = stack.base
        jobs.append(partial(http_session, base=base, path=stack.path, case="http-api",
                            target=t, record=record))  # fmt: skip
        if stack.gateway is not None:
            jobs.append(partial(http_session, base=stack.gateway, path=stack.path, case="gateway",
                                target=t, record=record, layer="gateway"))  # fmt: skip
        for case, rp in (stack.ssf or {}).items():
            jobs.append(partial(http_session, base=rp, path="/api/data", case=case, target=t,
                                record=record, layer="ssf"))  # fmt: skip
        if stack.service is not None:
            jobs.append(partial(http_session, base=base, path="/", case="http-page", target=t,
                                record=record))  # fmt: skip
            jobs.append(partial(websocket_session, base=base, case="websocket", target=t,
                                record=record, closed=record.websocket_closed))  # fmt: skip
    return jobs


def _drive_browser(stack: Stack, targets: list[Target], record: Recorder) -> None:
    """Poll the open pages (this thread: Playwright's) until their sessions' last attempt."""
    assert stack.browser is not None
    by_label = {t.label: t for t in targets}
    end = max((by_label[label].attempts[-1] for label in stack.browser.labels()), default=0.0)
    while time.time() <= end:
        stack.browser.poll(by_label, record)
        time.sleep(0.03)


def _random_id() -> str:
    return secrets.token_urlsafe(18)


def _browser_labels(plans: list[SessionPlan], options: DrillOptions) -> list[str]:
    """The sessions also driven in the browser: the first that idle out (they live longest)."""
    return [p.label for p in plans if p.logout is None][: options.browser_sessions]


def _publish(
    settings: Settings,
    plans: list[SessionPlan],
    ids: dict[str, str],
    t0: float,
    deadlines: dict[str, Deadline],
    tenants: dict[str, str],
) -> None:
    """Publish every session's login, activity and logout at its planned time; each deadline
    is taken from the time actually written on its last event."""
    events: list[tuple[float, str, SessionPlan]] = []
    for p in plans:
        events.append((p.start, "login", p))
        events += [(t, "activity", p) for t in p.activity]
        if p.logout is not None:
            events.append((p.logout, "logout", p))
    events.sort(key=lambda e: e[0])
    security = KafkaSecurity.from_settings(settings.kafka).librdkafka()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input,
                            **security) as out:  # fmt: skip
        for when, kind, p in events:
            delay = t0 + when - time.time()
            if delay > 0:
                time.sleep(delay)
            now = time.time()  # the event's occurred_at: what the enforcer's deadline counts from
            out.publish(_event(kind, p.user, ids[p.label], now, tenants[p.label]))
            if kind == "logout":
                deadlines[p.label] = Deadline(p.label, now, "logout")
            elif p.logout is None:  # idles out: the planned gap from this event, from now
                deadlines[p.label] = Deadline(p.label, now + p.deadline - when, p.reason)


def _event(kind: str, user: str, session_id: str, at: float, tenant: str) -> dict[str, Any]:
    if kind == "login":
        return login_doc(session_id, user, at, tenant=tenant)
    if kind == "activity":
        return activity_doc(session_id, user, at, tenant=tenant, resource="/api/data")
    return logout_doc(session_id, user, at, tenant=tenant)
