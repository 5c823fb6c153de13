#!/usr/bin/env python3
"""Keycloak for development: the official distribution from Maven Central, built once with
Sessionwarden's event listener (infra/keycloak/provider) into the cache, run on 127.0.0.1.

    python infra/keycloak/keycloak.py fetch    # download the distribution zip into the cache
    python infra/keycloak/keycloak.py build    # fetch, build the listener and the cached copy
    python infra/keycloak/keycloak.py up       # build if needed, start, provision realm "demo"
    python infra/keycloak/keycloak.py down     # stop the server `up` started, remove its data
    python infra/keycloak/keycloak.py status   # exit 0 when it answers

`up` runs the server in the background (it outlives this command), its events published to
KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092) on SESSIONWARDEN_TOPIC_PREFIX + auth.events,
and writes its URL, admin password and the realm's secrets to .keycloak/state.json (mode 0600).
The topic must exist (`sessionwarden topics`, or the demo, creates it).
Environment: SESSIONWARDEN_CACHE (cache, default ~/.cache/sessionwarden), KEYCLOAK_PORT (default
a free port), KEYCLOAK_REALM (default demo), KEYCLOAK_READY_TIMEOUT (seconds, default 240).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "streams"), str(REPO)]

from infra.kafka.broker import pid_alive, stop_group  # noqa: E402
from sessionwarden.testing.keycloak import (  # noqa: E402
    KeycloakError,
    KeycloakServer,
    built_copy,
    fetch,
    provision,
)

STATE_DIR = REPO / ".keycloak"
STATE = STATE_DIR / "state.json"


def say(msg: str) -> None:
    print(f"[keycloak] {msg}", flush=True)


def _state() -> dict[str, object] | None:
    try:
        return dict(json.loads(STATE.read_text()))
    except (OSError, ValueError):
        return None


def _answers(state: dict[str, object]) -> bool:
    try:
        url = f"http://127.0.0.1:{state['management_port']}/health/ready"
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


def up() -> int:
    state = _state()
    if state and pid_alive(int(str(state["pid"]))) and _answers(state):
        say(f"already up (pid {state['pid']}) at {state['url']}")
        return 0
    STATE_DIR.mkdir(exist_ok=True)
    shutil.rmtree(STATE_DIR / "run", ignore_errors=True)
    prefix = os.environ.get("SESSIONWARDEN_TOPIC_PREFIX", "")
    server = KeycloakServer(
        workdir=STATE_DIR / "run",
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        topic=f"{prefix}auth.events",
        port=int(os.environ.get("KEYCLOAK_PORT", "0")),
    )
    server.workdir.mkdir(parents=True)  # type: ignore[union-attr]
    server.start(built_copy(say))
    say(f"ready at {server.base_url} after {server.startup_s:.1f}s, RSS {server.rss_mib():.0f} MiB")
    realm = provision(server.admin(), os.environ.get("KEYCLOAK_REALM", "demo"))
    STATE.write_text("")
    STATE.chmod(0o600)
    STATE.write_text(
        json.dumps(
            {
                "pid": server.pid,
                "url": server.base_url,
                "management_port": server.management_port,
                "admin_user": "sw-admin",
                "admin_password": server.admin_password,
                "realm": realm.name,
                "users": realm.users,
                "user_password": realm.password,
                "rp_secret": realm.rp_secret,
                "revoker_secret": realm.revoker_secret,
            },
            indent=2,
        )
    )
    say(f"realm {realm.name!r} provisioned; users {sorted(realm.users)}; secrets in {STATE}")
    server.detach()
    return 0


def down() -> int:
    state = _state()
    if state and pid_alive(int(str(state["pid"]))):
        pid = int(str(state["pid"]))
        stop_group(pid)
        say(f"stopped pid {pid}")
    else:
        say("no Keycloak of ours is running")
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    return 0


def status() -> int:
    state = _state()
    ok = bool(state) and _answers(state)  # type: ignore[arg-type]
    say(f"{state['url'] if state else 'not started'}: {'up' if ok else 'down'}")
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    commands = {
        "fetch": lambda: (fetch(say), 0)[1],
        "build": lambda: (say(f"built copy: {built_copy(say)}"), 0)[1],
        "up": up,
        "down": down,
        "status": status,
    }
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[argv[0]]()
    except KeycloakError as err:
        print(f"[keycloak] error: {err}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
