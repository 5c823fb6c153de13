"""Our policy's effective timeout table as JSON, for the peers of the enforcer benchmark.

The Kafka Streams and Quix Streams jobs read this file instead of parsing the TOML again, so all
three resolve (user type, risk profile) to exactly the same timeouts:
``{"version", "clock_skew_tolerance", "table": {user_type|"*": {risk_profile|"*": [idle, abs]}}}``
(seconds; "*" stands for "not listed", as in ``Policy.timeouts_for``).
    python -m bench.peer_policy POLICY.toml OUT.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from sessionwarden.policy import Policy, default_policy, load_policy

WILDCARD = "*"


def policy_table(policy: Policy) -> dict[str, Any]:
    table: dict[str, dict[str, list[float]]] = {}
    for user_type, risk_profile, tm in policy.effective_timeouts():
        row = table.setdefault(WILDCARD if user_type is None else user_type, {})
        row[WILDCARD if risk_profile is None else risk_profile] = [tm.idle, tm.absolute]
    return {
        "version": policy.version,
        "clock_skew_tolerance": policy.clock_skew_tolerance,
        "table": table,
    }


def write_policy_json(policy_file: Path | None, out: Path) -> Path:
    policy = default_policy() if policy_file is None else load_policy(policy_file)
    out.write_bytes(orjson.dumps(policy_table(policy)))
    return out


if __name__ == "__main__":
    write_policy_json(Path(sys.argv[1]), Path(sys.argv[2]))
