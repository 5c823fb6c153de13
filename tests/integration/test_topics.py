"""Topic provisioning against the real broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from sessionwarden.config.settings import Settings
from sessionwarden.errors import ConfigError
from sessionwarden.kafka.topics import (
    INPUT_MAX_MESSAGE_BYTES,
    TopicSpec,
    delete_topics,
    ensure_topics,
    topic_specs,
)
from tests.integration.harness import wait_until


def test_provisioning_twice_changes_nothing_the_second_time(
    settings_factory: Callable[..., Settings], admin: AdminClient
) -> None:
    """Operators re-run provisioning on every deploy; the second run must be a no-op."""
    settings = settings_factory(provision=False)
    specs = topic_specs(settings, 86400)
    first: list[str] = []
    second: list[str] = []
    assert len(specs) == ensure_topics(admin, specs, report=first.append)
    assert 0 == ensure_topics(admin, specs, report=second.append)
    assert "nothing to change" == second[-1]
    md = admin.list_topics(timeout=10)
    assert {s.name: 3 for s in specs} == {s.name: len(md.topics[s.name].partitions) for s in specs}


def test_wrong_partition_count_is_refused_with_a_fix(
    settings_factory: Callable[..., Settings], admin: AdminClient
) -> None:
    """A partition mismatch would split a user's events from their state: refuse, say how to fix."""
    settings = settings_factory()
    wider = settings.replace(partitions=5)
    with pytest.raises(ConfigError) as err:
        ensure_topics(admin, topic_specs(wider, 86400), report=lambda _: None)
    assert "has 3 partitions, the layout needs 5" in str(err.value)
    assert "SESSIONWARDEN_PARTITIONS" in str(err.value)


def test_drifted_topic_config_is_realigned(
    settings_factory: Callable[..., Settings], admin: AdminClient
) -> None:
    """A retention changed by hand is put back to the layout's value, and reported."""
    settings = settings_factory()
    specs = topic_specs(settings, 86400)
    longer = topic_specs(settings, 2 * 86400)
    lines: list[str] = []
    assert 2 == ensure_topics(admin, longer, report=lines.append)
    assert any(
        line.startswith(f"updated   {settings.topics.input}: retention.ms=") for line in lines
    )
    assert 2 == ensure_topics(admin, specs, report=lambda _: None)


def test_an_existing_create_time_input_is_switched_to_broker_time_and_said_so(
    settings_factory: Callable[..., Settings], admin: AdminClient
) -> None:
    """An auth.events made before (CreateTime, no min.insync.replicas) is aligned; the report
    says that the records already on it keep their producer timestamps."""
    settings = settings_factory(provision=False)
    specs = topic_specs(settings, 86400)
    old = [
        TopicSpec(
            s.name,
            s.partitions,
            s.replication_factor,
            {
                k: v
                for k, v in s.configs.items()
                if k != "message.timestamp.type" or s.name != settings.topics.input
            },
        )
        for s in specs
    ]
    ensure_topics(admin, old, report=lambda _: None)
    lines: list[str] = []
    assert 1 == ensure_topics(admin, specs, report=lines.append)
    name = settings.topics.input
    assert f"updated   {name}: message.timestamp.type=LogAppendTime" in lines
    assert any(name in line and "keep their producer timestamps" in line for line in lines)
    res = ConfigResource(ResourceType.TOPIC, name)
    configs = admin.describe_configs([res])[res].result(timeout=10)
    assert "LogAppendTime" == configs["message.timestamp.type"].value
    assert "1" == configs["min.insync.replicas"].value
    assert str(INPUT_MAX_MESSAGE_BYTES) == configs["max.message.bytes"].value


def test_delete_topics_removes_the_named_and_the_prefixed_and_nothing_else(
    settings_factory: Callable[..., Settings], admin: AdminClient
) -> None:
    """Tests, benchmarks and the drill clean up after themselves, topics that faust or a peer
    made under their prefix included; a topic already gone or a prefix with none is no error."""
    mine, neighbour = settings_factory(), settings_factory()
    own = f"{mine.topics.prefix}peer-changelog"
    ensure_topics(admin, [TopicSpec(own, 1, 1)], report=lambda _: None)
    names = [s.name for s in topic_specs(mine, 86400)]
    kept = {s.name for s in topic_specs(neighbour, 86400)}

    def present() -> set[str]:
        return set(admin.list_topics(timeout=10).topics)

    delete_topics(admin, [names[0], f"{mine.topics.prefix}never-created"])
    wait_until(lambda: names[0] not in present(), 10, f"{names[0]} to go")
    assert {own, *names[1:]} <= present()

    delete_topics(admin, prefix=mine.topics.prefix)
    delete_topics(admin, prefix=f"{mine.topics.prefix}none-left.")
    wait_until(lambda: not any(t.startswith(mine.topics.prefix) for t in present()), 10, "all")
    assert kept <= present()


def test_the_detect_worker_makes_its_changelogs_before_faust_and_refuses_a_misfit(
    settings_factory: Callable[..., Settings], admin: AdminClient
) -> None:
    """The state table's changelog exists with the audit topic's partitions and faust's cleanup
    policy before the faust worker subscribes; a second start creates nothing; a changelog with
    another partition count is refused (its keys would land on the wrong partitions)."""
    from sessionwarden.detect.app import create_app
    from sessionwarden.detect.changelogs import changelog_specs, ensure_changelogs
    from tests.unit.detect.factories import policy

    settings = settings_factory()
    try:
        app = create_app(settings, policy())
        specs = changelog_specs(app, settings)
        assert 1 == ensure_changelogs(app, settings)
        md = admin.list_topics(timeout=10)
        assert {s.name: settings.kafka.partitions for s in specs} == {
            s.name: len(md.topics[s.name].partitions) for s in specs
        }
        for spec in specs:
            res = ConfigResource(ResourceType.TOPIC, spec.name)
            configs = admin.describe_configs([res])[res].result(timeout=10)
            assert spec.configs == {k: configs[k].value for k in spec.configs}
        assert 0 == ensure_changelogs(app, settings)

        other = settings_factory()
        misfit = create_app(other, policy())
        name = changelog_specs(misfit, other)[0].name
        admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
        wait_until(lambda: name in admin.list_topics(timeout=10).topics, 30, "the misfit")
        with pytest.raises(ConfigError, match="wrong partition count"):
            ensure_changelogs(misfit, other)
        delete_topics(admin, prefix=other.topics.prefix)
    finally:
        delete_topics(admin, prefix=settings.topics.prefix)
