"""`sessionwarden idp keycloak`: the revocation topic (read_committed) out to Keycloak, in its
own process and consumer group, so the enforcer's loop never waits on an identity provider.

Exactly once in effect without transactions: a batch's offsets are committed only once every
one of its sessions is answered for good by Keycloak (ended: 204, or already ended: 404); while
Keycloak is down the batch is asked again with backoff (sessionwarden.idp.retry) and nothing is
committed, so a crash or a stop asks again after the restart rather than losing a revocation,
and asking again is harmless (an ended session answers 404). Each outcome is audited as one log
line (the session id hashed with log_salt, never raw) and a counter on /metrics.

Which sessions: every revocation whose tenant is one of ``keycloak_realms`` (tenant = realm,
as the Keycloak event listener publishes its logins); a session of such a tenant that Keycloak
never held answers 404 and is counted as already ended. Revalidations are not revocations and
are skipped."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.outputs import REVOCATION_RECORD_ADAPTER, Revocation
from sessionwarden.errors import SessionwardenError
from sessionwarden.idp.keycloak import Answer
from sessionwarden.idp.retry import Backoff, Pending, Verdict
from sessionwarden.kafka.security import client_config
from sessionwarden.kafka.stall import AdminEnds, EndsProbe, SeekableConsumer, StallWatch
from sessionwarden.ops.logs import SessionHasher, error_fields
from sessionwarden.ops.service_metrics import ServiceObserver

log = logging.getLogger(__name__)
CONFIRM_AFTER_S = 1.0
"""A session Keycloak ended (204) is asked about once more this much later."""
_STEP_S = 1.0
"""The longest a batch waits for its next retry without stepping the loop's health."""


class ActuatorError(SessionwardenError):
    """The actuator cannot run: no broker, no revocation topic, a fatal consumer error."""


class SessionEnder(Protocol):
    """What the actuator asks of the identity provider (KeycloakAdmin)."""

    def end_session(self, realm: str, session_id: str) -> Answer: ...
    def check(self, realm: str) -> str | None: ...


class ConsumerLike(SeekableConsumer, Protocol):
    def subscribe(self, topics: list[str]) -> None: ...
    def consume(self, num_messages: int, timeout: float) -> list[Message]: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """A session in the identity provider."""

    realm: str
    session_id: str


def wanted(value: bytes, realms: frozenset[str]) -> Revocation | None:
    """The revocation in a record when its tenant is one of ``realms``, else None (a
    revalidation, another tenant). Raises ValidationError for a record that is neither."""
    record = REVOCATION_RECORD_ADAPTER.validate_json(value)
    if isinstance(record, Revocation) and record.tenant in realms:
        return record
    return None


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {
        **client_config(settings.kafka),
        "group.id": settings.keycloak.group_id,
        "client.id": f"sessionwarden-idp-keycloak-{settings.enforcer.instance_id}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 20,
        # A batch waits for Keycloak (retries) without polling: a member that waited past this
        # leaves the group, its commit fails and the batch is asked again (idempotent).
        "max.poll.interval.ms": 600_000,
        "log_level": 4,
    }


class KeycloakActuator:
    """The consume → end in Keycloak → audit → commit loop; ``stop()`` may come from a signal."""

    def __init__(
        self,
        settings: Settings,
        ender: SessionEnder,
        consumer_factory: Callable[[dict[str, Any]], ConsumerLike] = Consumer,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.topic = settings.topics.revocations
        self.realms = settings.keycloak.realm_list()
        self.ender = ender
        self.clock, self.wall, self.rand = clock, wall, rand
        self.backoff = Backoff(settings.keycloak.retry_base_s, settings.keycloak.retry_max_s)
        self.batch_size = 500
        self.stats = {
            "records": 0,
            "revocations": 0,  # of the listed realms
            "ended": 0,
            "already_ended": 0,
            "rejected": 0,
            "retries": 0,
            "skipped": 0,  # revalidations, other tenants
            "undecodable": 0,
            "consumer_reopens": 0,
            "restored": 0,  # sessions Keycloak kept after a 204, ended again on confirmation
        }
        self._confirm: dict[Target, float] = {}  # ended sessions -> when to ask once more
        self.hash = SessionHasher(settings.logging.salt)
        self.metrics = ServiceObserver(
            settings, settings.metrics.idp_port, "sessionwarden_idp", lambda: self.stats
        )
        self._consumer_factory = consumer_factory
        self.ends: EndsProbe = AdminEnds.of(client_config(settings.kafka))
        """Where the consumer's stall watch asks the end offsets (kafka.stall)."""
        self._consumer: ConsumerLike | None = None
        self._pool = ThreadPoolExecutor(
            settings.keycloak.concurrency, thread_name_prefix="sessionwarden-idp"
        )
        self._stop = threading.Event()
        self.wait: Callable[[float], object] = self._stop.wait
        """How a batch waits for its next retry (a fake clock's in the unit tests)."""

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        if not self.realms:
            raise ActuatorError("no realm to act for: set keycloak_realms")
        self._consumer = self._open()
        self._check_topic()
        self.metrics.start()
        self.metrics.ready()  # nothing to restore: the committed offsets are the state
        log.info(
            "idp actuator starting",
            extra={"provider": "keycloak", "realms": sorted(self.realms), "topic": self.topic},
        )
        for realm in sorted(self.realms):
            why = self.ender.check(realm)
            if why is not None:  # Keycloak down or the account refused: retried per session
                log.warning(
                    "no service account token from Keycloak yet",
                    extra={"realm": realm, "why": why},
                )
        watch = StallWatch(self.settings.kafka.fetch_stall_s, self.ends, clock=self.clock)
        try:
            while not self._stop.is_set():
                self.metrics.step()
                try:
                    self.step()
                    watch.tend(
                        self._consumer,
                        lambda _: self._reopen(pause_s=0.0),
                        "the idp actuator's Kafka consumer stopped fetching with records "
                        "waiting: reopened at the committed offsets",
                    )
                except KafkaException as exc:
                    # From the committed offsets again: the batch is asked again, never skipped.
                    log.error(
                        "idp actuator failed, resuming from the last committed batch",
                        extra=error_fields(exc),
                    )
                    self._reopen(pause_s=1.0)
        finally:
            self._consumer.close()
            self._pool.shutdown(wait=True)
            self.metrics.close()
        log.info("idp actuator stopped", extra=dict(self.stats))

    def step(self, timeout: float = 0.2) -> int:
        """One batch, in this order:

        1. read up to ``batch_size`` committed records;
        2. pick the revocations of the listed realms (one request per session);
        3. end each session in Keycloak, asking again with backoff until each is answered for
           good (ended, already ended, or rejected);
        4. audit each outcome: a log line and a counter;
        5. commit the batch's offsets.

        Stopped during 3: returns before 5, so the restart asks again. Returns the sessions
        answered for good."""
        assert self._consumer is not None
        self._confirm_due()
        msgs = self._consumer.consume(self.batch_size, timeout)
        if not msgs:
            return 0
        orders: dict[Target, Revocation] = {}
        offsets: dict[tuple[str, int], int] = {}
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise ActuatorError(f"fatal Kafka error: {err}")
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra=error_fields(err))
                continue
            offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
            self._count(records=1)
            revocation = self._decode(msg)
            if revocation is not None:
                self._count(revocations=1)
                orders.setdefault(Target(revocation.tenant, revocation.session_id), revocation)
        done = self._carry_out(orders)
        if done is None:
            return 0  # stopped with sessions unanswered: nothing committed
        if offsets:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
        return done

    def _decode(self, msg: Message) -> Revocation | None:
        value = msg.value()
        try:
            revocation = wanted(value if value is not None else b"", self.realms)
        except ValidationError as exc:
            self._count(undecodable=1)
            log.warning(
                "undecodable revocation record skipped",
                extra={
                    "reason": exc.errors()[0]["type"] if exc.errors() else "invalid",
                    "topic": msg.topic(),
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                },
            )
            return None
        if revocation is None:
            self._count(skipped=1)
        return revocation

    def _carry_out(self, orders: dict[Target, Revocation]) -> int | None:
        """Step 3 and 4: the number of sessions answered for good, None if stopped first."""
        pending: Pending[Target] = Pending(self.backoff, self.rand)
        pending.add(orders, self.clock())
        done = 0
        while len(pending):
            if self._stop.is_set():
                return None
            due = pending.due(self.clock())
            answers = self._pool.map(lambda t: (t, self._attempt(t)), due)
            for target, answer in answers:
                if answer.verdict.final:
                    failures = pending.settle(target)
                    self._audit(orders[target], answer, failures + 1)
                    if answer.verdict is Verdict.ENDED:
                        self._confirm.setdefault(target, self.clock() + CONFIRM_AFTER_S)
                    done += 1
                else:
                    pending.failed(target, self.clock())
                    self._count(retries=1)
                    if pending.failures(target) in (1, 10) or pending.failures(target) % 100 == 0:
                        log.warning(
                            "Keycloak did not end a session: asking again",
                            extra={
                                "realm": target.realm,
                                "session": self.hash(target.session_id),
                                "attempts": pending.failures(target),
                                "why": answer.reason,
                            },
                        )
            next_at = pending.next_at()
            if next_at is not None:  # a second at most: /healthz sees the loop step meanwhile
                self.metrics.step()
                self.wait(min(_STEP_S, max(0.0, next_at - self.clock())))
        return done

    def _confirm_due(self) -> None:
        """Ask again, once, for each session ended CONFIRM_AFTER_S ago: a refresh in flight
        while Keycloak ended it can keep it alive (docs/KEYCLOAK.md). 404 confirms the end; 204
        means it had come back and is ended again (counted as ``restored``). Best effort: the
        batch was committed on the first answer."""
        now = self.clock()
        due = [t for t, at in self._confirm.items() if at <= now]
        for target in due:
            del self._confirm[target]
        for target, answer in zip(due, self._pool.map(self._attempt, due), strict=True):
            if answer.verdict is Verdict.ENDED:
                self._count(restored=1)
                log.warning(
                    "Keycloak had kept a session it ended (a refresh raced the end): ended again",
                    extra={"realm": target.realm, "session": self.hash(target.session_id)},
                )

    def _attempt(self, target: Target) -> Answer:
        try:
            return self.ender.end_session(target.realm, target.session_id)
        except Exception as exc:  # a fault of the client must not drop the revocation
            log.exception("the request to Keycloak failed", extra=error_fields(exc))
            return Answer(Verdict.AGAIN, None, "client error")

    def _audit(self, revocation: Revocation, answer: Answer, attempts: int) -> None:
        outcome = answer.verdict.value
        self._count(**{outcome: 1})
        fields = {
            "outcome": outcome,
            "realm": revocation.tenant,
            "user_id": revocation.user_id,
            "session": self.hash(revocation.session_id),
            "revocation_id": str(revocation.revocation_id),
            "reason": revocation.reason,
            "attempts": attempts,
            "status": answer.status,
            "after_effective_s": round(self.wall() - _ts(revocation.effective_at), 3),
        }
        if answer.verdict is Verdict.REJECTED:
            log.error("Keycloak refused to end a session", extra={**fields, "why": answer.reason})
        else:
            log.info("Keycloak session ended", extra=fields)

    def _count(self, **moved: int) -> None:
        """Move several counters at once (a scrape reads them from another thread)."""
        self.stats = {k: v + moved.get(k, 0) for k, v in self.stats.items()}

    def _open(self) -> ConsumerLike:
        consumer = self._consumer_factory(consumer_config(self.settings))
        consumer.subscribe([self.topic])
        return consumer

    def _reopen(self, pause_s: float) -> None:
        """A new consumer in the group, from the committed offsets."""
        if self._consumer is not None:
            self._consumer.close()
        self._stop.wait(pause_s)
        self._consumer = self._open()
        self._count(consumer_reopens=1)

    def _check_topic(self) -> None:
        lister = getattr(self._consumer, "list_topics", None)
        if lister is None:
            return
        try:
            found = lister(self.topic, timeout=15).topics.get(self.topic)
        except KafkaException as exc:
            raise ActuatorError(
                f"no Kafka broker answered at {self.settings.kafka.bootstrap_servers}: {exc}"
            ) from exc
        if found is None or found.error is not None:
            raise ActuatorError(
                f"no topic {self.topic} on {self.settings.kafka.bootstrap_servers}:"
                " run `sessionwarden topics create` (and the enforcer)"
            )


def _ts(value: datetime) -> float:
    return value.timestamp()
