"""`make demo`: a local broker, the enforcer, the detectors, the dashboard (its URL is printed),
simulated traffic, live output, a closing audit.

Everything it starts (the broker if it was not running, the enforcer, the detectors) is
stopped on exit, Ctrl-C included. Topics carry the prefix ``demo.``. With ``--keycloak`` a real
Keycloak (the cached copy `make keycloak` builds) publishes its events to the demo's input as
well, and a few of its users log in and refresh their tokens beside the simulated traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from sessionwarden.audit.records import render
from sessionwarden.audit.simulate import simulate
from sessionwarden.audit.verify import run_verify
from sessionwarden.config.settings import Settings, load_settings
from sessionwarden.kafka.reading import read_topic
from sessionwarden.kafka.topics import admin_client, ensure_topics, topic_specs
from sessionwarden.policy import Policy, load_policy
from sessionwarden.testing.keycloak import KeycloakServer, built_copy, provision
from sessionwarden.testing.pg_sandbox import demo_database, revoked_count

REPO = Path(__file__).resolve().parents[3]
POLICY = Path(__file__).resolve().parents[1] / "policy" / "shipped" / "demo.toml"
WORKDIR = Path(".demo")
COLORS = {
    "revocation": "31",
    "session_ended": "33",
    "session_started": "32",
    "alert": "35",
    "ended_session_used": "35",
    "revalidation": "36",
    "high_risk_operation": "36",
    "dead_letter": "90",
    "role_changed": "36",
}
SHOWN = {
    "revocation",
    "revalidation",
    "session_started",
    "ended_session_used",
    "alert",
    "dead_letter",
    "role_changed",
}


def _broker(command: str) -> int:
    return subprocess.run([sys.executable, str(REPO / "infra/kafka/broker.py"), command]).returncode


def _printer(lock: threading.Lock, color: bool) -> Any:
    def show(doc: dict[str, Any]) -> None:
        if doc.get("type") not in SHOWN:
            return
        line = render(doc)
        if color:
            line = f"\033[{COLORS.get(doc['type'], '0')}m{line}\033[0m"
        with lock:
            print(line, flush=True)

    return show


def _follow(servers: str, topic: str, show: Any, stop: threading.Event) -> None:
    for _, value in read_topic(servers, topic, from_beginning=False, stop=stop.is_set):
        show(orjson.loads(value))


def _dashboard_token(env: dict[str, str]) -> Path:
    """A token file for the demo's dashboard (made once), and one log salt for every process,
    so the dashboard's session hashes match the log lines'."""
    path = (WORKDIR / "dashboard.token").resolve()
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    env["SESSIONWARDEN_DASHBOARD_TOKEN_FILE"] = str(path)
    env.setdefault("SESSIONWARDEN_LOG_SALT", secrets.token_hex(16))
    return path


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--users", type=int, default=int(os.environ.get("DEMO_USERS", "40")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("DEMO_SEED", "7")))
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument(
        "--keycloak",
        action="store_true",
        help="also run a real Keycloak whose logins and token refreshes reach the enforcer",
    )
    return parser.parse_args(argv)


def _keycloak(settings: Settings, stack: contextlib.ExitStack) -> None:
    """Keycloak publishing to the demo's input; realm ``demo`` (tenant ``demo``), three users
    logging in now and refreshing once: the demo policy then ends their sessions when idle."""
    server = KeycloakServer(
        workdir=(WORKDIR / "keycloak").resolve(),
        bootstrap_servers=settings.kafka.bootstrap_servers,
        topic=settings.topics.input,
    )
    server.workdir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    print("starting Keycloak (the first build takes a few minutes)")
    server.start(built_copy(print))
    stack.callback(server.stop)
    users = {"kc-ann": ("viewer",), "kc-ben": ("viewer", "editor"), "kc-cy": ("admin",)}
    realm = provision(server.admin(), "demo", users=users)
    tokens = server.tokens(realm.name)
    for user in users:
        status, grant = tokens.password(realm.test_client, user, realm.password)
        if status == 200:
            tokens.refresh(realm.test_client, grant["refresh_token"])
    print(
        f"Keycloak at {server.base_url} ({server.startup_s:.0f} s to start): {sorted(users)} "
        "logged in to realm demo and refreshed once"
    )


def _start(
    services: list[tuple[str, str]], env: dict[str, str], children: list[subprocess.Popen[bytes]]
) -> None:
    """Start each service, adding it to ``children`` at once (so a failure stops the others)."""
    for name, module in services:
        log = open(WORKDIR / f"{name}.log", "ab")  # noqa: SIM115 (closed with the child)
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", *module.split()], env=env, stdout=log, stderr=log, cwd=REPO
            )
        )
        print(f"started the {name} (log: {WORKDIR / (name + '.log')})")


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()


def _traffic_and_audit(
    settings: Settings, policy: Policy, args: argparse.Namespace, stop: threading.Event
) -> tuple[int, threading.Lock]:
    """Follow the output topics, simulate, then audit the run; returns verify's exit code."""
    lock = threading.Lock()
    show = _printer(lock, sys.stdout.isatty())
    for topic in (settings.topics.revocations, settings.topics.audit, settings.topics.alerts):
        threading.Thread(
            target=_follow, args=(settings.kafka.bootstrap_servers, topic, show, stop), daemon=True
        ).start()
    time.sleep(3)  # let the enforcer join its group before the first login
    sim_out = io.StringIO()
    truth = WORKDIR / "truth.json"
    simulate(settings, policy, args.users, args.seed, args.rate, truth, sim_out, stop.is_set)
    with lock:
        print(sim_out.getvalue().strip().splitlines()[-1])
    summary = io.StringIO()
    report, histogram = WORKDIR / "verify.json", WORKDIR / "latency.png"
    code = run_verify(settings, truth, 2.0, report, histogram, out=summary)
    with lock:
        print("\n" + summary.getvalue())
    return code, lock


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started_broker = False
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and _broker("status") != 0:
        if _broker("up") != 0:
            return 1
        started_broker = True
    WORKDIR.mkdir(exist_ok=True)
    settings = load_settings(topic_prefix="demo.", policy_file=POLICY, log_format="text")
    policy = load_policy(POLICY)
    ensure_topics(
        admin_client(settings), topic_specs(settings, policy.max_absolute), report=lambda _: None
    )
    env = {
        **os.environ,
        "SESSIONWARDEN_TOPIC_PREFIX": "demo.",
        "SESSIONWARDEN_POLICY_FILE": str(POLICY),
        "SESSIONWARDEN_LOG_FORMAT": "json",
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        # Each process's generated metrics token goes beside its log.
        "SESSIONWARDEN_METRICS_TOKEN_DIR": str(WORKDIR.resolve()),
    }
    services = [
        ("enforcer", "sessionwarden enforce"),
        ("detectors", "sessionwarden detect"),
        ("dashboard", "sessionwarden dashboard"),
    ]
    databases = contextlib.ExitStack()
    pg = databases.enter_context(demo_database(print))
    if pg is not None:
        env["SESSIONWARDEN_PG_DSN"] = pg.sink_dsn
        services.append(("postgres-sink", "sessionwarden sink postgres"))
    token_file = _dashboard_token(env)
    children: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _start(services, env, children)
        if args.keycloak:
            _keycloak(settings, databases)
        port = settings.dashboard.port
        print(f"dashboard: http://127.0.0.1:{port}/#token={token_file.read_text().strip()}")
        code, lock = _traffic_and_audit(settings, policy, args, stop)
        if pg is not None:
            with lock:
                print(f"PostgreSQL: {revoked_count(pg)} sessions in sessionwarden.revoked_sessions")
        return code
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what the demo started")
        return 130
    finally:
        stop.set()
        _stop(children)
        databases.close()
        if started_broker:
            _broker("down")


if __name__ == "__main__":
    sys.exit(main())
