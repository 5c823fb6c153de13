"""The tables' changelog topics, made before the faust worker starts.

faust declares a table's changelog topic while its consumer subscribes. On a fresh app the
subscription can be taken before the broker serves the new topic: the consumer then holds no
partitions of it (none assigned, none in its metadata until its next refresh, minutes later),
and every write to that table fails the agent's batch. So the worker creates the changelogs
itself, with the configs faust would give them, and waits until the broker serves them; faust
then finds them in place. Existing changelogs are left as they are (faust's own rule), except
that a partition count other than the audit topic's is refused: a table's keys must land on the
partition of the record that wrote them.
"""

from __future__ import annotations

import logging
from typing import Any

from mode.utils.times import want_seconds

from sessionwarden.config.settings import Settings
from sessionwarden.kafka.topics import (
    TopicSpec,
    admin_client,
    create_missing_topics,
    min_insync_replicas,
)

log = logging.getLogger(__name__)


def changelog_specs(app: Any, settings: Settings) -> list[TopicSpec]:
    """One spec per table of ``app``: faust's name, cleanup policy and retention, our partition
    count, replication and ``min.insync.replicas``."""
    specs = []
    for name, table in sorted(app.tables.items()):
        topic = table.changelog_topic
        flags = [f for f, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
        configs = {
            **({"cleanup.policy": ",".join(flags)} if flags else {}),
            "min.insync.replicas": str(min_insync_replicas(settings)),
            **{k: str(v) for k, v in (topic.config or {}).items()},
        }
        if topic.retention:
            configs["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        specs.append(
            TopicSpec(
                topic.get_topic_name(),
                settings.kafka.partitions,
                settings.kafka.replication_factor,
                configs,
                f"the detectors' {name} table",
            )
        )
    return specs


def ensure_changelogs(app: Any, settings: Settings, timeout: float = 30.0) -> int:
    """Create the missing changelogs of ``app`` and wait until the broker serves them; returns
    how many were created. Needs CREATE on the app's topic prefix only (docs/SECURITY.md)."""
    created = create_missing_topics(
        admin_client(settings),
        changelog_specs(app, settings),
        report=lambda line: log.info("changelog topic", extra={"change": line}),
        timeout=timeout,
    )
    return len(created)
