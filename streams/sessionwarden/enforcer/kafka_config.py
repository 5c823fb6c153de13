"""librdkafka settings of the enforcer's clients, in one place."""

from __future__ import annotations

from typing import Any

from sessionwarden.config.settings import Settings
from sessionwarden.kafka.security import KafkaSecurity, client_config
from sessionwarden.kafka.topics import INPUT_MAX_MESSAGE_BYTES


def consumer_config(settings: Settings) -> dict[str, Any]:
    config = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": settings.enforcer.group_id,
        "client.id": f"sessionwarden-enforcer-{settings.enforcer.instance_id}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.enforcer.session_timeout_ms,
        "heartbeat.interval.ms": max(250, settings.enforcer.session_timeout_ms // 4),
        "max.poll.interval.ms": 300_000,
        "partition.assignment.strategy": "cooperative-sticky",
        # Fresh high watermarks: the lag rule asks "have we read everything?" every batch.
        "fetch.wait.max.ms": 50,
        # When the prefetch queue is full (a flood of large records fills its 64 MiB quickly)
        # librdkafka waits this long before fetching again (1 s by default): with the input
        # budget leaving records to a later transaction, that was a second of reading nothing.
        "fetch.queue.backoff.ms": 10,
        "log_level": 4,
        **KafkaSecurity.from_settings(settings.kafka).librdkafka(),
    }
    if settings.enforcer.static_membership:
        # A restarted instance takes its partitions back at once instead of waiting for its
        # dead predecessor's session to time out.
        config["group.instance.id"] = settings.transactional_id
    return config


def producer_config(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "client.id": f"sessionwarden-enforcer-{settings.enforcer.instance_id}",
        "transactional.id": settings.transactional_id,
        "transaction.timeout.ms": settings.enforcer.transaction_timeout_ms,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 500_000,
        "message.max.bytes": 4 * 1024 * 1024,  # dead letters carry up to 1 MiB raw, base64
        # Java and aiokafka producers use murmur2: every producer we ship agrees with them.
        "partitioner": "murmur2_random",
        # Records forwarded to auth.events (wrong partition for their key) must fit its
        # per-batch max.message.bytes.
        "batch.size": INPUT_MAX_MESSAGE_BYTES,
        "log_level": 4,
        **KafkaSecurity.from_settings(settings.kafka).librdkafka(),
    }


def restore_config(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": f"{settings.enforcer.group_id}-restore",  # never commits; assign() only
        "client.id": f"sessionwarden-restore-{settings.enforcer.instance_id}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800,
        "log_level": 4,
        **KafkaSecurity.from_settings(settings.kafka).librdkafka(),
    }


def commands_config(settings: Settings) -> dict[str, Any]:
    """The operator commands reader: assign only, never commits (its offsets commit in the
    enforcer's transactions, under the enforcer's group)."""
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": f"{settings.enforcer.group_id}-commands",
        # Committed offsets past retention restart at the oldest command, never the newest.
        "auto.offset.reset": "earliest",
        "client.id": f"sessionwarden-commands-{settings.enforcer.instance_id}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 50,
        "log_level": 4,
        **KafkaSecurity.from_settings(settings.kafka).librdkafka(),
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return {**client_config(settings.kafka), "log_level": 4}
