"""The drill's mass revocation: every session of a tenant ended by one operator command
(`sessionwarden revoke --all-users`), timed from the command to its commit, then to the first
refusal of each sampled session at every layer the drill drives (API, database, gateway).

``MassRevocation`` and ``line`` are pure (the figures and the report's line); ``run_mass``
drives the stack: it logs the sessions in, checks the sample is served, runs the command as an
operator would (the CLI in a process of its own, whose first line says when the revocation
committed) and probes the sample at each layer until refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from sessionwarden.audit.drill.drivers import SESSION_HEADER, read_in_transaction
from sessionwarden.audit.drill.stack import child_env
from sessionwarden.audit.drill.targets import Stack
from sessionwarden.config.settings import Settings
from sessionwarden.kafka.security import KafkaSecurity
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.events import login_doc

COMMIT_TARGET_S = 5.0
REFUSAL_TARGET_S = 1.0
SAMPLE = 20
PROBE_TIMEOUT_S = 10.0

Check = Callable[[str], bool]
"""Is the session refused at this layer?"""


@dataclass(frozen=True)
class MassRevocation:
    """What one mass revocation measured. ``refused_s``: per layer driven, the seconds after
    the commit at which the slowest sampled session was first refused (None: not every one was
    refused within the probe's timeout, or the sample was not served before the command)."""

    sessions: int
    revoked: int
    committed_s: float | None
    """Command written -> the revocation committed on every partition (None: no answer)."""
    sample: int
    refused_s: dict[str, float | None] = field(default_factory=dict)
    held: bool = False
    """The command committed a tenant record first (a tenant over 1,000 sessions a partition)."""

    @property
    def met(self) -> bool:
        return (
            self.committed_s is not None
            and self.committed_s <= COMMIT_TARGET_S
            and all(s is not None and s <= REFUSAL_TARGET_S for s in self.refused_s.values())
        )


def line(result: MassRevocation) -> str:
    """The drill report's line."""
    if result.committed_s is None:
        took = "no commit answered"
    else:
        took = f"committed {result.committed_s:.2f} s after the command"
    layers = ", ".join(
        f"{name} " + ("not refused in time" if s is None else f"{s:.3f} s")
        for name, s in result.refused_s.items()
    )
    verdict = "met" if result.met else "MISSED"
    return (
        f"mass revocation: {result.revoked:,} of {result.sessions:,} sessions revoked, {took} "
        f"(target <= {COMMIT_TARGET_S:g} s); refused after the commit, slowest of "
        f"{result.sample} sampled: {layers or 'no layer driven'} "
        f"(target <= {REFUSAL_TARGET_S:g} s each): {verdict}"
    )


def document(result: MassRevocation) -> dict[str, Any]:
    return {
        "sessions": result.sessions,
        "revoked": result.revoked,
        "command_to_committed_s": result.committed_s,
        "sample": result.sample,
        "refused_after_commit_s": result.refused_s,
        "met": result.met,
        "held": result.held,
        "line": line(result),
    }


def first_refusals(checks: dict[str, Check], sample: list[str], timeout: float) -> dict[str, float]:
    """Per layer, the seconds until its slowest sampled session was first refused (the layers
    probed in turn, so none waits for another); a layer that did not refuse every one within
    ``timeout`` is left out."""
    since = time.monotonic()
    pending = {name: list(sample) for name in checks}
    found: dict[str, float] = {}
    while pending and time.monotonic() < since + timeout:
        for name in list(pending):
            refused = checks[name]
            pending[name] = [sid for sid in pending[name] if not refused(sid)]
            if not pending[name]:
                found[name] = time.monotonic() - since
                del pending[name]
        if pending:
            time.sleep(0.01)
    return found


def run_mass(
    settings: Settings, stack: Stack, policy_file: Path, tenant: str, sessions: int,
    say: Callable[[str], None],
) -> MassRevocation:  # fmt: skip
    """Log ``sessions`` sessions of ``tenant`` in, revoke them all with one command and time
    the commit and every layer's refusals (see the module)."""
    sample_n = min(SAMPLE, sessions)
    issue = stack.service.issue if stack.service is not None else None
    ids = [issue(f"mass-u{i}") if issue else f"mass-{i}" for i in range(sample_n)]
    ids += [f"mass-{os.urandom(6).hex()}-{i}" for i in range(sample_n, sessions)]
    security = KafkaSecurity.from_settings(settings.kafka).librdkafka()
    with AuthEventPublisher(settings.kafka.bootstrap_servers, settings.topics.input,
                            **security) as out:  # fmt: skip
        now = time.time()
        for i, sid in enumerate(ids):
            # A service identity: long-lived under the drill policy, so that only the command
            # ends these sessions (the drill's own idle out within seconds).
            out.publish(login_doc(sid, f"mass-u{i}", now, user_type="service", tenant=tenant))
    with contextlib.ExitStack() as opened:
        checks = _checks(stack, tenant, opened)
        return _revoke(settings, policy_file, tenant, ids, sample_n, checks, say)


def _revoke(
    settings: Settings, policy_file: Path, tenant: str, ids: list[str], sample_n: int,
    checks: dict[str, Check], say: Callable[[str], None],
) -> MassRevocation:  # fmt: skip
    sample = ids[:sample_n]
    served = {name: not any(refused(sid) for sid in sample) for name, refused in checks.items()}
    say(f"drill: mass revocation of {len(ids):,} sessions of tenant {tenant}")
    cli = subprocess.Popen(
        [sys.executable, "-m", "sessionwarden", "revoke", "--tenant", tenant, "--all-users",
         "--reason-admin", "drill: mass revocation", "--timeout", "120"],
        env={**os.environ, **child_env(settings, policy_file)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert cli.stdout is not None
    first = cli.stdout.readline()  # the commit (held, or every session ended)
    found = first_refusals(checks, sample, PROBE_TIMEOUT_S)
    rest, _ = cli.communicate(timeout=300)
    committed, revoked = _parse(first + rest)
    refused_s = {name: found.get(name) if served[name] else None for name in checks}
    held = first.startswith("revocation of")  # the CLI's line for a held command's commit
    return MassRevocation(len(ids), revoked, committed, sample_n, refused_s, held)


def _parse(text: str) -> tuple[float | None, int]:
    """(seconds to the commit, sessions revoked) from the CLI's lines."""
    took = re.search(r"committed in ([0-9.]+) s", text)
    revoked = re.search(r"revoked (\d+) session", text)
    return (float(took[1]) if took else None, int(revoked[1]) if revoked else 0)


def _checks(stack: Stack, tenant: str, opened: contextlib.ExitStack) -> dict[str, Check]:
    """A refusal check per layer the drill drives (its connections closed with ``opened``)."""
    checks: dict[str, Check] = {}
    if stack.service is not None:
        checks["API"] = _http_refused(stack.base + stack.path, opened)
    if stack.pg_dsn is not None:
        conn = opened.enter_context(psycopg.connect(stack.pg_dsn, connect_timeout=10))
        checks["database"] = lambda sid: not read_in_transaction(conn, tenant, sid)
    if stack.gateway is not None:
        checks["gateway"] = _http_refused(stack.gateway.rstrip("/") + stack.path, opened)
    return checks


def _http_refused(url: str, opened: contextlib.ExitStack) -> Check:
    """A check over one kept-alive connection, opened again when the server closed it (a
    refusal may close it, and so may an idle timeout while the command runs)."""
    parts = urlsplit(url)
    conns: list[HTTPConnection] = []

    def close() -> None:
        for conn in conns:
            conn.close()

    opened.callback(close)

    def ask(sid: str) -> int:
        if not conns:
            conns.append(HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5))
        conn = conns[0]
        try:
            conn.request("GET", parts.path, headers={SESSION_HEADER: sid})
            response = conn.getresponse()
            response.read()
        except (HTTPException, OSError):
            conn.close()
            conns.clear()
            raise
        return response.status

    def refused(sid: str) -> bool:
        try:
            status = ask(sid)
        except (HTTPException, OSError):
            status = ask(sid)  # once more, on a new connection
        return not 200 <= status < 300

    return refused
