"""The benchmark's peers (Kafka Streams, Quix Streams) must do the enforcer's job before their
speed means anything: the seeded check of bench/peers_check.py on the real broker."""

from __future__ import annotations

from bench.peer_policy import WILDCARD, policy_table
from bench.peers_check import check
from sessionwarden.policy import load_policy
from tests.integration.harness import REPO


def test_the_peers_policy_table_resolves_every_name_like_the_policy() -> None:
    policy = load_policy(REPO / "streams/sessionwarden/policy/shipped/default.toml")
    table = policy_table(policy)["table"]
    for user_type in ("admin", "customer", "service", "robot", ""):
        for risk in ("low", "medium", "high", "unheard-of"):
            row = table.get(user_type) or table[WILDCARD]
            idle, absolute = row.get(risk) or row[WILDCARD]
            tm = policy.timeouts_for(user_type, risk)
            assert (tm.idle, tm.absolute) == (idle, absolute), (user_type, risk)


def test_the_peers_revoke_what_the_enforcer_revokes_on_a_seeded_run(
    bootstrap_servers: str,
) -> None:
    result = check(bootstrap_servers)
    assert 60 == result["enforcer_revocations"], result
    assert result["kstreams_same"], result
    assert result["quix_same_where_expressible"], result
    assert 20 == result["quix_missed_silent"], "Quix Streams cannot fire on silent sessions"
