"""The changelog specs the worker creates before faust starts (the topics faust would declare),
and the group settings faust takes from ours."""

from __future__ import annotations

from faust.transport.drivers.aiokafka import Transport

from sessionwarden.config.settings import load_settings
from sessionwarden.detect.app import app_id, create_app
from sessionwarden.detect.changelogs import changelog_specs
from sessionwarden.detect.documents import USERS
from tests.unit.detect.factories import policy


def test_one_spec_per_table_with_the_name_and_configs_faust_would_declare() -> None:
    settings = load_settings(topic_prefix="cl.", partitions=6, detect_group_id="det")
    app = create_app(settings, policy())
    specs = {s.name: s for s in changelog_specs(app, settings)}
    assert {f"{app_id(settings)}-{USERS}-changelog"} == set(specs)
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


def test_the_state_changelog_is_compacted_only() -> None:
    """A user's document is its latest value; the document drops old marks itself."""
    settings = load_settings(topic_prefix="cl.", partitions=3, detect_group_id="det")
    app = create_app(settings, policy())
    (spec,) = changelog_specs(app, settings)
    assert "compact" == spec.configs["cleanup.policy"]
    assert "retention.ms" not in spec.configs


def test_the_group_session_timeout_and_heartbeat_follow_the_setting() -> None:
    """A worker restarted after a crash gets its partitions back once the group drops the dead
    one: after the session timeout, heartbeats a third of it apart (at most 3 s)."""
    for timeout, heartbeat in ((6.0, 2.0), (60.0, 3.0)):
        settings = load_settings(detect_session_timeout_s=timeout)
        conf = create_app(settings, policy()).conf
        assert (timeout, heartbeat) == (conf.broker_session_timeout, conf.broker_heartbeat_interval)
