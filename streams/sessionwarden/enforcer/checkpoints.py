"""When the enforcer writes its partitions' snapshots (snapshot.py), and where it finds them.

Offsets come from the delivery reports of changelog records: librdkafka serves them inside
``commit_transaction`` (it flushes first), so once a transaction committed, the offset after
its last record on a partition is exactly where the committed state of that partition ends.
Reports of a transaction that aborts are dropped with it. Capture happens in the loop thread
between transactions, when the in-memory state is the committed one; serialising and writing
happen in one writer thread (the loop keeps enforcing meanwhile, sharing the GIL with it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Message, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from sessionwarden.config.settings import Settings
from sessionwarden.enforcer.engine import snapshot
from sessionwarden.enforcer.engine.partition import PartitionState
from sessionwarden.enforcer.engine.snapshot import Captured, Expect, Header, SnapshotError

log = logging.getLogger(__name__)

DEFAULT_DELETE_RETENTION_MS = 86_400_000  # Kafka's default, when the topic does not say


@dataclass(frozen=True)
class Facts:
    """What a snapshot is checked against, read from the cluster once per restore."""

    cluster_id: str | None
    topic_id: str | None
    max_age_s: float


def changelog_facts(admin: AdminClient, topic: str, timeout: float = 10.0) -> Facts:
    """Cluster id, topic id and the tombstone retention of the changelog. Raises
    KafkaException when the cluster cannot say (the caller then restores in full)."""
    cluster_id = admin.list_topics(topic, timeout=timeout).cluster_id
    described = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)
    topic_id = str(described[topic].result().topic_id)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource], request_timeout=timeout)[resource].result()
    entry = configs.get("delete.retention.ms")
    retention_ms = int(entry.value) if entry is not None else DEFAULT_DELETE_RETENTION_MS
    return Facts(cluster_id, topic_id, retention_ms / 1000 * snapshot.RETENTION_SHARE)


@dataclass
class _Partition:
    offset: int  # the changelog offset the committed in-memory state is consistent with
    changed: int = 0  # changelog records committed since the last snapshot
    written: float = field(default_factory=time.monotonic)


class Checkpoints:
    """Tracks committed changelog offsets per owned partition and writes snapshots."""

    def __init__(
        self,
        directory: Path,
        topic: str,
        interval_s: float,
        max_records: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.topic = topic
        self.interval_s = interval_s
        self.max_records = max_records
        self.facts: Facts | None = None
        self.written = 0  # snapshots written, for tests and logs
        self._clock = clock
        self._parts: dict[int, _Partition] = {}
        self._pending: dict[int, list[int]] = {}  # partition -> [next offset, records]
        self._jobs: queue.Queue[Captured | None] = queue.Queue()
        self._busy: set[int] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._write_loop, name="snapshots", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> Checkpoints | None:
        if settings.enforcer.state_dir is None:
            return None
        return cls(
            settings.enforcer.state_dir,
            settings.topics.enforcer_state,
            settings.enforcer.state_snapshot_interval_s,
            settings.enforcer.state_snapshot_records,
        )

    # -- offsets ----------------------------------------------------------------------------

    def delivered(self, err: KafkaError | None, msg: Message) -> None:
        """Delivery report of a changelog record of the open transaction."""
        offset = msg.offset()
        if err is None and offset is not None and offset >= 0:
            self.record(msg.partition(), offset)

    def record(self, partition: int, offset: int) -> None:
        """A changelog record of the open transaction was written at ``offset``."""
        seen = self._pending.setdefault(partition, [0, 0])
        seen[0] = max(seen[0], offset + 1)
        seen[1] += 1

    def committed(self) -> None:
        for p, (offset, records) in self._pending.items():
            part = self._parts.get(p)
            if part is not None:
                part.offset = max(part.offset, offset)
                part.changed += records
        self._pending.clear()

    def aborted(self) -> None:
        self._pending.clear()

    def restored(self, partition: int, offset: int, replayed: int, whole: bool) -> None:
        """A partition's state is whole and consistent with ``offset``; a full restore (or a
        long replay) is worth a snapshot soon."""
        part = _Partition(offset, changed=replayed)
        if whole and replayed:
            part.written = 0.0
        self._parts[partition] = part

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._parts.pop(p, None)
            self._pending.pop(p, None)

    # -- writing ----------------------------------------------------------------------------

    def tick(self, states: dict[int, PartitionState]) -> None:
        """Between transactions: snapshot the partition most overdue, if any is (one per
        loop turn, so a many-partition instance spreads the capture pauses)."""
        if self.facts is None:  # a snapshot must name its cluster and topic
            return
        now = time.monotonic()
        due = [
            (part.written, p)
            for p, part in self._parts.items()
            if part.changed
            and p in states
            and (now - part.written >= self.interval_s or part.changed >= self.max_records)
        ]
        if due:
            self._submit(min(due)[1], states[min(due)[1]])

    def flush(self, states: dict[int, PartitionState], wait_s: float = 0.0) -> None:
        """Snapshot every changed partition of ``states`` (revoke, shutdown: between
        transactions); with ``wait_s``, wait that long for the writes to finish."""
        if self.facts is None:
            return
        self._idle(wait_s or 30.0)  # a write under way must not make this one skip
        for p, state in states.items():
            part = self._parts.get(p)
            if part is not None and part.changed:
                self._submit(p, state)
        if wait_s:
            self._idle(wait_s)

    def _idle(self, wait_s: float) -> None:
        """Wait (up to ``wait_s``) for the writer to finish what it was given."""
        deadline = time.monotonic() + wait_s
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.01)

    def _submit(self, p: int, state: PartitionState) -> None:
        part = self._parts[p]
        with self._lock:
            if p in self._busy:
                return  # the previous one is still being written: the next tick retries
            self._busy.add(p)
        facts = self.facts
        header = Header(
            self.topic,
            p,
            part.offset,
            facts.cluster_id if facts else None,
            facts.topic_id if facts else None,
            self._clock(),
            0,
            0,
        )
        self._jobs.put(snapshot.capture(state, header))
        part.changed = 0
        part.written = time.monotonic()

    def _write_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                size = snapshot.write(self.directory, job)
                self.written += 1
                log.debug(
                    "snapshot written",
                    extra={
                        "partition": job.header.partition,
                        "offset": job.header.offset,
                        "sessions": job.header.sessions,
                        "bytes": size,
                    },
                )
            except OSError as exc:
                log.warning(
                    "writing a snapshot failed; the next restore reads more changelog",
                    extra={"partition": job.header.partition, "error": exc.strerror},
                )
            finally:
                with self._lock:
                    self._busy.discard(job.header.partition)

    def close(self, wait_s: float = 30.0) -> None:
        """Write what was submitted (up to ``wait_s``), then stop the writer."""
        self._jobs.put(None)
        self._thread.join(wait_s)

    # -- reading ----------------------------------------------------------------------------

    def load(self, state: PartitionState, partition: int, low: int, high: int) -> int | None:
        """Load the partition's snapshot into a fresh ``state``; the offset to replay the
        changelog from, or None (and a log line saying why) for a full restore."""
        path = snapshot.path_for(self.directory, self.topic, partition)
        try:
            facts = self.facts
            if facts is None:
                raise SnapshotError("the changelog's cluster facts are unknown")
            header = snapshot.read_header(path)
            expect = Expect(
                self.topic,
                partition,
                low,
                high,
                facts.cluster_id,
                facts.topic_id,
                self._clock(),
                facts.max_age_s,
            )
            reason = snapshot.refusal(header, expect)
            if reason is not None:
                raise SnapshotError(reason)
            snapshot.load(path, header, state)
        except SnapshotError as exc:
            log.info(
                "restoring the partition from the changelog's start",
                extra={"partition": partition, "reason": str(exc)},
            )
            return None
        log.info(
            "restoring the partition from its snapshot",
            extra={
                "partition": partition,
                "snapshot_offset": header.offset,
                "snapshot_age_s": round(self._clock() - header.written_at, 3),
                "snapshot_sessions": header.sessions,
                "snapshot_bytes": path.stat().st_size,
            },
        )
        return header.offset

    def read_facts(self, admin: AdminClient) -> None:
        try:
            self.facts = changelog_facts(admin, self.topic)
        except (KafkaException, KeyError, ValueError) as exc:
            self.facts = None
            log.warning("cannot read the changelog's configuration", extra={"error": str(exc)})
