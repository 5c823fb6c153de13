"""Revocations out to Keycloak: deadline -> the Keycloak session ended, with the enforcer, the
broker, `sessionwarden idp keycloak` and Keycloak on this machine. Sessions are Keycloak's own
(the direct grant), each published as a login of the "short" profile (idle 2 s) at a steady
pace; the session has ended in Keycloak when its back-channel logout token reaches the
relying party (Keycloak sends it while it ends the session, before it answers the DELETE).
Also: the revocation read from Kafka by a separate consumer, and the actuator's own figure
(Keycloak's 204 minus the deadline, from its log lines).
Keycloak is started from `make keycloak`'s cached copy.
Usage: python -m bench.keycloak_latency SERVERS PREFIX SESSIONS PER_S"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench.common import child_settings, produce, producer
from bench.latency import POLICY, summary
from sessionwarden.contracts.codec import encode_dict
from sessionwarden.testing.collector import Collector
from sessionwarden.testing.events import login_doc, parse_ts
from sessionwarden.testing.keycloak import (
    KeycloakServer,
    keycloak_version,
    provision,
    session_id_of,
)
from sessionwarden.testing.relying_party import RelyingParty
from sessionwarden.testing.services import EnforcerProcess, IdpKeycloakProcess
from sessionwarden.testing.waiting import wait_until

TARGET_P99_MS = 1000  # the proof tests' bound: ended within 1 s of the deadline
USER = "bench-user"


def render_markdown(kc: dict[str, Any]) -> list[str]:
    """The report's section."""
    ended, kafka, own = kc["ended"], kc["kafka"], kc["actuator"]
    verdict = "met" if ended["p99_ms"] <= TARGET_P99_MS else "missed"
    return [
        "",
        "## Revocations out to Keycloak (sessionwarden idp keycloak)",
        "",
        f"Deadline -> the Keycloak session ended (its back-channel logout token at the relying "
        f"party), {ended['samples']} sessions at {kc['per_s']:g}/s: p50 {ended['p50_ms']:.0f} ms, "
        f"p99 {ended['p99_ms']:.0f} ms, max {ended['max_ms']:.0f} ms (target p99 <= "
        f"{TARGET_P99_MS} ms: {verdict}); the revocation read from Kafka: p50 "
        f"{kafka['p50_ms']:.0f} ms, p99 {kafka['p99_ms']:.0f} ms; Keycloak's 204 as the "
        f"actuator logged it: p50 {own['p50_ms']:.0f} ms, p99 {own['p99_ms']:.0f} ms. "
        f"Keycloak {kc['keycloak']}.",
    ]


def main() -> None:
    servers, prefix = sys.argv[1], sys.argv[2]
    sessions, per_s = int(sys.argv[3]), float(sys.argv[4])
    settings = child_settings(servers, prefix, policy_file=POLICY)
    with contextlib.ExitStack() as stop:
        server = KeycloakServer().start()  # `make keycloak`'s cached copy
        stop.callback(server.stop)
        rp = stop.enter_context(RelyingParty())
        realm = provision(server.admin(), f"bench-{uuid.uuid4().hex[:8]}", users={USER: ()},
                          backchannel_logout_url=rp.url, listener=False)  # fmt: skip
        tokens = server.tokens(realm.name)
        sids = []
        for _ in range(sessions):  # the relying party's client: the logout goes to it
            status, body = tokens.password(realm.rp_client, USER, realm.password, realm.rp_secret)
            assert status == 200, body
            sids.append(session_id_of(body["access_token"]))
        secret = Path(stop.enter_context(tempfile.TemporaryDirectory())) / "secret"
        secret.write_text(realm.revoker_secret)
        env = {
            "SESSIONWARDEN_KEYCLOAK_URL": server.base_url,
            "SESSIONWARDEN_KEYCLOAK_REALMS": realm.name,
            "SESSIONWARDEN_KEYCLOAK_CLIENT_ID": realm.revoker_client,
            "SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET_FILE": str(secret),
        }
        enforcer = stop.enter_context(EnforcerProcess(settings, policy=Path(POLICY)))
        actuator = stop.enter_context(IdpKeycloakProcess(settings, Path(POLICY), **env))
        enforcer.wait_assigned()
        actuator.wait_assigned()
        collector = Collector(servers, settings.topics.revocations)
        stop.callback(collector.close)
        out = producer(settings)
        start = time.time()
        for i, sid in enumerate(sids):
            time.sleep(max(0.0, start + i / per_s - time.time()))
            doc = login_doc(sid, USER, time.time(), risk="short", tenant=realm.name)
            produce(out, settings.topics.input, encode_dict(doc), USER.encode())
        out.flush(10)
        wait_until(lambda: all(rp.logged_out(s) for s in sids), 120, "every logout")
        wait_until(lambda: len(collector.docs()) >= sessions, 60, "the revocations")
        read = {d["session_id"]: (t, parse_ts(d["effective_at"])) for t, d in collector.timed()}
        lines = [m for m in actuator.messages() if m.get("msg") == "Keycloak session ended"]
        ended = [float(rp.logged_out(s) or 0.0) - read[s][1] for s in sids]
        result = {
            "sessions": sessions,
            "per_s": per_s,
            "keycloak": f"{keycloak_version()}, started in {server.startup_s:.0f} s, loopback",
            "ended": summary(ended),
            "kafka": summary([t - deadline for t, deadline in read.values()]),
            "actuator": summary([float(m["after_effective_s"]) for m in lines]),
        }
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
