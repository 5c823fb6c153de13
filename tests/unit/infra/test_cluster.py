"""The throwaway clusters' pure parts: node configs and coordinator lookup."""

from __future__ import annotations

from pathlib import Path

from infra.kafka.cluster import KafkaNode, coordinator_partition, java_string_hash, render_config


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def test_java_string_hash_matches_java() -> None:
    assert 0 == java_string_hash("")
    assert 99162322 == java_string_hash("hello")
    assert -2147483648 == java_string_hash("polygenelubricants")  # Integer.MIN_VALUE


def test_coordinator_partition_follows_kafka() -> None:
    assert 99162322 % 50 == coordinator_partition("hello", 50)
    assert 0 == coordinator_partition("polygenelubricants", 8)  # Utils.abs(MIN_VALUE) == 0
    assert abs(java_string_hash("zz-enforcer-0")) % 8 == coordinator_partition("zz-enforcer-0", 8)


def test_three_node_config_replicates_internal_topics_with_min_isr_two(tmp_path: Path) -> None:
    node = KafkaNode(2, 40001, 40002, tmp_path / "node2")
    voters = "1@127.0.0.1:40000,2@127.0.0.1:40002,3@127.0.0.1:40004"
    props = _props(render_config(node, voters, 3))
    assert "2" == props["node.id"]
    assert voters == props["controller.quorum.voters"]
    assert "controller.quorum.bootstrap.servers" not in props
    assert "PLAINTEXT://127.0.0.1:40001,CONTROLLER://127.0.0.1:40002" == props["listeners"]
    assert str(tmp_path / "node2" / "data") == props["log.dirs"]
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert "3" == props[key]
    assert "2" == props["transaction.state.log.min.isr"] == props["min.insync.replicas"]


def test_single_node_config_keeps_replication_one(tmp_path: Path) -> None:
    props = _props(render_config(KafkaNode(1, 40001, 40002, tmp_path), "1@127.0.0.1:40002", 1))
    assert "1" == props["transaction.state.log.replication.factor"] == props["min.insync.replicas"]
