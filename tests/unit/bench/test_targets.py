"""The targets table of `make bench`: each row judged on the run's own figures."""

from __future__ import annotations

from typing import Any

from bench.targets import markdown, rows


def run(**overrides: Any) -> dict[str, Any]:
    peers = {
        "kstreams": {"enforcer_ratio": 1.1, "bytes_per_session": 442.0},
        "quix": {"enforcer_ratio": 2.5, "bytes_per_session": 900.0},
    }
    results: dict[str, Any] = {
        "throughput": [
            {"sessions": 100_000, "ratio_to_ceiling": 0.8, "ratio_to_faust": 9.0,
             "ratio_to_raw": 0.5,
             "enforcer_rate": 40_000.0, "bytes_per_session": 900.0, "peers": peers},
            {"sessions": 1_000_000, "ratio_to_ceiling": 0.59, "ratio_to_faust": 11.0,
             "ratio_to_raw": 0.39,
             "enforcer_rate": 30_000.0, "bytes_per_session": 700.0, "peers": peers},
        ],
        "recovery": {"sessions": 1_000_000, "restore_s": 4.2},
        "latency": {"p50_ms": 90.0, "p99_ms": 260.0},
        "detect": {"ratio": 0.61, "rate": 3_200.0},
    }  # fmt: skip
    results.update(overrides)
    return results


def verdicts(results: dict[str, Any]) -> dict[str, bool | None]:
    return {row.figure: row.met for row in rows(results)}


def test_each_row_is_judged_against_its_own_threshold() -> None:
    got = verdicts(run())
    assert got["enforcer / ceiling, 1M"] is False  # 0.59 < 0.6
    assert got["enforcer / ceiling, 100k"] is True  # 0.8 >= 0.75
    assert got["enforcer / bare faust agent, 1M"] is True
    assert got["enforcer / raw consume, 1M"] is False  # 0.39 < 0.4
    assert got["enforcer rate at 1M / at 100k"] is False  # 30,000 / 40,000 = 0.75 < 0.8
    assert got["enforcer vs Quix Streams, same job"] is True
    assert got["enforcer vs Kafka Streams, same job"] is True
    assert got["RSS per live session, 1M"] is False  # 700 B, but Kafka Streams holds 442 B
    assert got["restore after SIGKILL, 1M sessions"] is True
    assert got["revocation latency at half load, p50 / p99"] is False  # p99 260 > 250
    assert got["detectors / bare faust agent"] is True
    # 30,000 events/s * 2/51 = 1,176 audit records/s; 3,200/s is 2.7x
    assert got["detectors vs a 1:50 mix at full rate"] is True


def test_a_peer_must_be_beaten_at_every_size() -> None:
    results = run()
    results["throughput"][0]["peers"] = {"kstreams": {"enforcer_ratio": 0.9}}
    assert verdicts(results)["enforcer vs Kafka Streams, same job"] is False


def test_what_the_run_did_not_measure_is_never_met() -> None:
    results = run(throughput=[], recovery=None, latency=None, detect=None)
    assert set(verdicts(results).values()) == {None}
    assert "not measured" in "\n".join(markdown(results))


def test_a_recovery_of_another_size_does_not_count_for_1m() -> None:
    results = run(recovery={"sessions": 5_000, "restore_s": 0.4})
    assert verdicts(results)["restore after SIGKILL, 1M sessions"] is None


def test_the_gateway_rows_judge_the_refusal_at_nginx_and_the_gates_own_time() -> None:
    gateway = {"latency": {"p99_ms": 180.0}, "gate_time": {"p99_ms": 6.5, "rate": 1000.0}}
    got = verdicts(run(gateway=gateway))
    assert got["deadline -> refused at nginx, half load, p99"] is True
    assert got["gate's own time, p99"] is False  # 6.5 ms > 5 ms
    skipped = verdicts(run(gateway={"skipped": "nginx not found"}))
    assert skipped["gate's own time, p99"] is None


def mass_revoke(committed_s: float, **layers: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "sessions": 100_000,
        "sample": 50,
        "command_to_committed_s": committed_s,
    }
    for key in ("api", "db", "gateway"):
        result[f"{key}_refusal_after_commit"] = {"n": 50, "max_s": layers.get(key, 0.2)}
    return result


def test_the_mass_revocation_rows_judge_the_commit_and_every_layers_refusal() -> None:
    """5 s from the command to the commit, then 1 s per layer; a layer that did not refuse
    every sampled session misses, one not run is not measured."""
    got = verdicts(run(mass_revoke=mass_revoke(0.8, gateway=1.4)))
    commit = "mass revocation, 100k sessions: command -> committed"
    layer = "mass revocation: refused at the {} after the commit, max"
    assert got[commit] is True
    assert got[layer.format("API (listener)")] is True
    assert got[layer.format("gateway (nginx, gate)")] is False  # 1.4 s > 1 s
    slow = run(mass_revoke={**mass_revoke(13.8), "db_refusal_after_commit": {"n": 49}})
    assert verdicts(slow)[commit] is False
    assert verdicts(slow)[layer.format("database (sink, guard)")] is False
    assert verdicts(run(mass_revoke=None))[commit] is None
    older = mass_revoke(0.8)
    del older["gateway_refusal_after_commit"]  # a result from before the gateway was measured
    assert verdicts(run(mass_revoke=older))[layer.format("gateway (nginx, gate)")] is None


def test_keycloak_session_ended_is_judged_on_its_p99_and_skipped_is_not_measured() -> None:
    """Deadline -> Keycloak session ended within the proof tests' second, at p99."""
    figure = "deadline -> Keycloak session ended, p50 / p99"
    ended = {"samples": 20, "p50_ms": 180.0, "p99_ms": 420.0}
    assert verdicts(run(keycloak_revocations={"ended": ended}))[figure] is True
    slow = {**ended, "p99_ms": 1001.0}
    assert verdicts(run(keycloak_revocations={"ended": slow}))[figure] is False
    assert verdicts(run(keycloak_revocations={"skipped": "no Keycloak"}))[figure] is None


def test_the_rate_must_hold_from_100k_to_1m_live_sessions() -> None:
    results = run()
    results["throughput"][1]["enforcer_rate"] = 32_000.0  # 0.8 of the rate at 100k
    assert verdicts(results)["enforcer rate at 1M / at 100k"] is True
    results["throughput"] = results["throughput"][1:]
    assert verdicts(results)["enforcer rate at 1M / at 100k"] is None


def test_rss_per_session_must_be_at_most_512_bytes() -> None:
    results = run()
    for t in results["throughput"]:
        t["peers"]["kstreams"]["bytes_per_session"] = 600.0
    results["throughput"][1]["bytes_per_session"] = 520.0
    assert verdicts(results)["RSS per live session, 1M"] is False
    results["throughput"][1]["bytes_per_session"] = 500.0
    assert verdicts(results)["RSS per live session, 1M"] is True
