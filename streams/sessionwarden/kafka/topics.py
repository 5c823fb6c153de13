"""Topic provisioning in code: names, partitions, replication and configs for every topic.

Idempotent: a second run creates nothing and says so. An existing topic whose partition count
differs from the one the layout needs is refused, because keys would land on other partitions
than the state that belongs to them (the enforcer's changelog is co-partitioned with its input).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import MAX_RECORD_BYTES
from sessionwarden.errors import ConfigError
from sessionwarden.kafka.security import client_config

DAY_MS = 24 * 3600 * 1000
MARGIN_MS = DAY_MS
INPUT_MAX_MESSAGE_BYTES = MAX_RECORD_BYTES + 4096
"""``max.message.bytes`` of auth.events: one record at the decoder's limit, with its key and the
batch framing. The broker refuses a larger (compressed) batch, so producers must keep batches
under it (librdkafka ``batch.size``; Java and aiokafka producers split or stay below)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


def topic_specs(settings: Settings, max_absolute_s: float) -> list[TopicSpec]:
    """The product's topics. Retention of everything that replays sessions covers the longest
    session the policy allows, plus a day."""
    t = settings.topics
    session_ms = str(int(max_absolute_s * 1000) + MARGIN_MS)
    # acks=all means "every in-sync replica", so without a floor a replicated cluster can
    # acknowledge a transaction written to one broker only.
    min_isr = {"min.insync.replicas": str(min_insync_replicas(settings))}

    def spec(name: str, configs: dict[str, str], purpose: str) -> TopicSpec:
        p, rf = settings.kafka.partitions, settings.kafka.replication_factor
        return TopicSpec(name, p, rf, {**configs, **min_isr}, purpose)

    def kept(ms: int | str) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(ms)}

    input_configs = {
        **kept(session_ms),
        # The enforcer's clock for deadlines is the broker's append time, which no producer
        # clock can bend (docs/ARCHITECTURE.md, "Time").
        "message.timestamp.type": "LogAppendTime",
        "max.message.bytes": str(INPUT_MAX_MESSAGE_BYTES),
    }
    changelog = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
    return [
        spec(t.input, input_configs, "auth events in (key user_id)"),
        spec(
            t.enforcer_state,
            {**changelog, "segment.ms": str(3600 * 1000)},
            "enforcer state changelog (key [kind, tenant, id]), co-partitioned with the input",
        ),
        spec(
            t.revocations,
            {"cleanup.policy": "compact,delete", "retention.ms": session_ms},
            "revocations and revalidations (key [tenant, session_id])",
        ),
        spec(t.audit, kept(90 * DAY_MS), "session lifecycle audit (key user_id)"),
        spec(t.alerts, kept(365 * DAY_MS), "anomaly alerts (key user_id)"),
        spec(
            t.dlq,
            {**kept(30 * DAY_MS), "max.message.bytes": str(4 * 1024 * 1024)},
            "dead letters: raw bytes, reason, coordinates",
        ),
        spec(t.caep, kept(30 * DAY_MS), "CAEP Security Event Tokens (optional)"),
        spec(
            t.commands,
            {**kept(90 * DAY_MS), "message.timestamp.type": "LogAppendTime"},
            "operator commands (key user_id, or one copy per partition), co-partitioned "
            "with the input",
        ),
    ]


def min_insync_replicas(settings: Settings) -> int:
    """The setting, or min(2, replication factor): one broker may fail, none silently."""
    if settings.kafka.min_insync_replicas is not None:
        return settings.kafka.min_insync_replicas
    return min(2, settings.kafka.replication_factor)


def _existing(admin: AdminClient, timeout: float) -> dict[str, int]:
    md = admin.list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}


def _wait_visible(admin: AdminClient, names: list[str], timeout: float) -> bool:
    """Block until new topics show in metadata with leaders, so callers can use them at once;
    False if some did not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while names:
        md = admin.list_topics(timeout=timeout)
        if all(
            n in md.topics
            and md.topics[n].error is None
            and md.topics[n].partitions
            and all(p.leader >= 0 for p in md.topics[n].partitions.values())
            for n in names
        ):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _wait_aligned(admin: AdminClient, spec: TopicSpec, timeout: float) -> None:
    """The controller has the change once the alter returns; brokers serve it a moment later
    (on a cluster, the broker asked may not know a new topic yet: that is waited out too)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pending = bool(_config_drift(admin, spec, timeout))
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
            if time.monotonic() >= deadline:
                raise
            pending = True
        if not pending or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def _config_drift(admin: AdminClient, spec: TopicSpec, timeout: float) -> dict[str, str]:
    res = ConfigResource(ResourceType.TOPIC, spec.name)
    current = admin.describe_configs([res])[res].result(timeout=timeout)
    return {
        k: v for k, v in spec.configs.items() if current.get(k) is None or current[k].value != v
    }


def ensure_topics(
    admin: AdminClient,
    specs: list[TopicSpec],
    report: Callable[[str], None] = print,
    timeout: float = 30.0,
) -> int:
    """Create missing topics and align configs; returns how many changes were made."""
    existing = _existing(admin, timeout)
    _refuse_wrong_partitions(specs, existing)
    created = _create_missing(admin, [s for s in specs if s.name not in existing], report, timeout)
    changes = len(created)
    for spec in specs:
        if spec not in created and _align(admin, spec, report, timeout):
            changes += 1
    report("nothing to change" if changes == 0 else f"{changes} change(s) made")
    return changes


def create_missing_topics(
    admin: AdminClient,
    specs: list[TopicSpec],
    report: Callable[[str], None] = print,
    timeout: float = 30.0,
) -> list[TopicSpec]:
    """Create those of ``specs`` that do not exist and wait until metadata shows them with
    leaders; returns those created. Existing topics are only checked for their partition count
    (no config reads: a client may hold CREATE on the names and nothing more)."""
    existing = _existing(admin, timeout)
    _refuse_wrong_partitions(specs, existing)
    missing = [s for s in specs if s.name not in existing]
    created = _create_missing(admin, missing, report, timeout, check_configs=False)
    if not _wait_visible(admin, [s.name for s in specs], timeout):
        raise ConfigError(
            f"topics not served by the broker {timeout:g} s after creating them: "
            + ", ".join(s.name for s in specs)
        )
    return created


def _refuse_wrong_partitions(specs: list[TopicSpec], existing: dict[str, int]) -> None:
    wrong = [
        (s, existing[s.name]) for s in specs if existing.get(s.name, s.partitions) != s.partitions
    ]
    if not wrong:
        return
    lines = [f"  {s.name}: has {n} partitions, the layout needs {s.partitions}" for s, n in wrong]
    raise ConfigError(
        "existing topics have the wrong partition count:\n" + "\n".join(lines) + "\n"
        "All Sessionwarden topics share one partition count so that a user's events, state "
        "and outputs stay co-partitioned. Either set SESSIONWARDEN_PARTITIONS to the existing "
        "count, or delete these topics (their data is lost) and run this again."
    )


def _create_missing(
    admin: AdminClient,
    missing: list[TopicSpec],
    report: Callable[[str], None],
    timeout: float,
    check_configs: bool = True,
) -> list[TopicSpec]:
    """Create ``missing`` and wait until they are served (with ``check_configs``, their configs
    too); returns those created here (one that exists meanwhile, created concurrently or seen
    through stale metadata, is not)."""
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication_factor, config=s.configs) for s in missing],
        operation_timeout=timeout,
    )
    created: list[TopicSpec] = []
    for spec in missing:
        try:
            futures[spec.name].result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            continue  # created meanwhile: waited for below, then treated as existing
        report(f"created   {spec.name} ({spec.partitions} partitions)")
        created.append(spec)
    _wait_visible(admin, [s.name for s in missing], timeout)
    for spec in created if check_configs else []:
        _wait_aligned(admin, spec, timeout)
    return created


def _align(
    admin: AdminClient, spec: TopicSpec, report: Callable[[str], None], timeout: float
) -> bool:
    """Set the configs of an existing topic that differ from ``spec``; True if any did."""
    drift = _config_drift(admin, spec, timeout)
    if not drift:
        report(f"unchanged {spec.name}")
        return False
    res = ConfigResource(
        ResourceType.TOPIC,
        spec.name,
        incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in drift.items()
        ],
    )
    admin.incremental_alter_configs([res])[res].result(timeout=timeout)
    _wait_aligned(admin, spec, timeout)
    report(f"updated   {spec.name}: " + ", ".join(f"{k}={v}" for k, v in drift.items()))
    if "message.timestamp.type" in drift:
        report(
            f"          records already on {spec.name} keep their producer timestamps; "
            "the enforcer times those by its own clock when it reads them"
        )
    return True


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings.kafka))


def delete_topics(
    admin: AdminClient, names: Iterable[str] = (), prefix: str = "", timeout: float = 30
) -> None:
    """Delete ``names``, and with a ``prefix`` every topic whose name starts with it (what a
    test, a benchmark or the drill created, faust's and the peers' own topics included),
    waiting up to ``timeout`` s for each. A topic that is already gone, or one that is slow to
    go, is no error."""
    doomed = set(names)
    if prefix:
        doomed.update(t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix))
    if not doomed:
        return  # the admin client refuses an empty list
    for future in admin.delete_topics(sorted(doomed), operation_timeout=timeout).values():
        with contextlib.suppress(Exception):  # cleaning up: never mask the caller's outcome
            future.result(timeout=timeout)
