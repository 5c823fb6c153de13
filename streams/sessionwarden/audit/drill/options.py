"""What one run of the drill is asked to do: its options (from the command line) and the policy
it runs under unless told otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DRILL_POLICY = Path(__file__).resolve().parents[2] / "policy" / "shipped" / "drill.toml"


@dataclass
class DrillOptions:
    sessions: int = 20
    seed: int = 7
    tolerance_s: float = 1.0
    rate: float = 2.0  # sessions started per second
    pg_sessions: int = 10  # sessions also driven through PostgreSQL (0: none)
    browser_sessions: int = 2  # sessions also open in a browser, two tabs each (0: none)
    url: str | None = None  # drive this service's HTTP contract instead of starting the example
    path: str = "/api/data"
    start_enforcer: bool = True
    start_sink: bool = True  # False: the database layer is left without its sink (weakened)
    unprotected: tuple[str, ...] = ()  # example-service paths left outside the middleware
    page_script: bool = True  # False: the page variant without the browser script
    pg_admin_dsn: str | None = None  # a superuser DSN: sandbox there instead of a temp cluster
    own_topics: bool = False  # the drill made its topics: delete them at the end
    outage_sessions: int = 1  # sessions revoked while a service's listener is cut off (0: none)
    budget_s: float = 2.0  # that service's staleness budget (it fails closed past it)
    gateway: bool = False  # also nginx + `sessionwarden gate` before an upstream (where nginx is)
    gateway_unprotected: tuple[str, ...] = ()  # paths nginx serves without asking the gate
    ssf: bool = False  # also relying parties fed only by the SSF transmitter (push and poll)
    ssf_transmitter: bool = True  # False: the transmitter is not run (weakened)
    mass_sessions: int = 0  # then a mass revocation of this many sessions, timed (0: none)
    idp_sessions: int = 0  # sessions born in Keycloak, ended there by the idp actuator (0: none)
    keycloak_url: str | None = None  # the idp layer's Keycloak (admin login: env); None: start one
    start_idp_actuator: bool = True  # False: the idp layer is left without its actuator (weakened)
    workdir: Path = field(default_factory=lambda: Path(".drill"))
