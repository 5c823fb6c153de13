"""The changelog specs the worker creates before faust starts: the topics faust would declare."""

from __future__ import annotations

from faust.transport.drivers.aiokafka import Transport

from sessionwarden.config.settings import load_settings
from sessionwarden.detect.app import BACKLOG_ALLOWANCE_S, app_id, create_app
from sessionwarden.detect.changelogs import changelog_specs
from sessionwarden.detect.tables import TABLES
from tests.unit.detect.factories import policy


def test_one_spec_per_table_with_the_name_and_configs_faust_would_declare() -> None:
    settings = load_settings(topic_prefix="cl.", partitions=6, detect_group_id="det")
    app = create_app(settings, policy())
    specs = {s.name: s for s in changelog_specs(app, settings)}
    assert {f"{app_id(settings)}-{t}-changelog" for t in TABLES} == set(specs)
    for table in app.tables.values():
        topic = table.changelog_topic
        spec = specs[topic.get_topic_name()]
        retention_ms = int(topic.retention * 1000) if topic.retention else None
        # what faust's own transport sends when it creates the topic
        faust_configs = Transport._topic_config(
            Transport.__new__(Transport), retention_ms, topic.compacting, topic.deleting
        )
        assert {k: str(v) for k, v in faust_configs.items()} == {
            k: v for k, v in spec.configs.items() if k != "min.insync.replicas"
        }
        assert (6, settings.kafka.replication_factor) == (spec.partitions, spec.replication_factor)


def test_windowed_tables_expire_their_buckets_and_the_others_are_compacted_only() -> None:
    settings = load_settings(topic_prefix="cl.", partitions=3, detect_group_id="det")
    app = create_app(settings, policy())
    specs = {s.name.split("-")[-2]: s.configs for s in changelog_specs(app, settings)}
    assert "compact" == specs["sessions"]["cleanup.policy"] == specs["cooldowns"]["cleanup.policy"]
    assert "retention.ms" not in specs["sessions"]
    for windowed in ("expirations", "grants"):
        assert "compact,delete" == specs[windowed]["cleanup.policy"]
        assert int(specs[windowed]["retention.ms"]) > BACKLOG_ALLOWANCE_S * 1000
