"""The reader queues before it commits; the pushers retry with backoff and never block each
other. Driven with fake Kafka and HTTP and a fake clock; the store is a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionwarden.config.settings import load_settings
from sessionwarden.ssf.transmitter.ingest import Ingest
from sessionwarden.ssf.transmitter.pusher import IDLE_WAIT_S, Pusher, PushOptions
from sessionwarden.ssf.transmitter.store import Store
from sessionwarden.ssf.transmitter.streams import Stream
from sessionwarden.ssf.vocabulary import POLL_DELIVERY, SESSION_REVOKED
from tests.unit.ssf.transmitter.factories import (
    MAKER,
    T0,
    revalidation,
    revocation,
    stored,
    stream,
)


class Msg:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value


class FakeConsumer:
    def __init__(self, store: Store, log: list[str]) -> None:
        self.batches: list[list[Msg]] = []
        self.store, self.log = store, log

    def subscribe(self, topics: list[str], on_assign: Any = None) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, *, asynchronous: bool) -> None:
        # What is committed must already be durably queued.
        self.log.append(f"commit after {sum(self.store.states('s1').values())} queued")

    def close(self) -> None:
        pass


def _ingest(tmp_path: Path, **settings: Any) -> tuple[Ingest, FakeConsumer, Store, list[str]]:
    store, log = Store(tmp_path), []
    consumer = FakeConsumer(store, log)
    ingest = Ingest(
        load_settings(**settings),
        store,
        MAKER,
        lambda: T0 + 400,
        lambda ids: log.append(f"wake {sorted(ids)}"),
        consumer_factory=lambda _: consumer,
    )
    return ingest, consumer, store, log


def test_a_batch_is_queued_then_committed_and_a_replayed_batch_queues_nothing(
    tmp_path: Path,
) -> None:
    """A crash between the two replays the batch: the same jtis, nothing new."""
    ingest, consumer, store, log = _ingest(tmp_path)
    stored(store, stream("s1"))
    stored(store, stream("s2", events_requested=(SESSION_REVOKED,)))
    batch = [Msg(revocation("s-1")), Msg(revalidation("s-2")), Msg(b"not json")]
    consumer.batches = [batch, batch]
    assert 3 == ingest.step()  # s1: revoked + claims change; s2: revoked only
    assert ["commit after 2 queued", "wake ['s1', 's2']"] == log
    assert 0 == ingest.step()
    assert {"pending": 2} == store.states("s1")


def test_disabled_streams_and_unmatched_subjects_get_nothing(tmp_path: Path) -> None:
    """default_subjects NONE: only the users a receiver added; disabled: nothing at all."""
    ingest, consumer, store, _ = _ingest(tmp_path, ssf_tx_default_subjects="NONE")
    stored(store, stream("s1"))
    stored(store, stream("s2", status="disabled"))
    stored(store, stream("s3", status="paused"))
    store.add_subject("s1", {"format": "opaque", "id": "alice"})
    store.add_subject("s3", {"format": "opaque", "id": "alice"})
    consumer.batches = [[Msg(revocation("s-1", "alice")), Msg(revocation("s-2", "bob"))]]
    assert 2 == ingest.step()
    assert ({"pending": 1}, {}, {"pending": 1}) == tuple(
        store.states(s) for s in ("s1", "s2", "s3")
    )


def test_a_record_older_than_a_streams_retention_gives_that_stream_nothing(
    tmp_path: Path,
) -> None:
    """Revoked at T0 + 300, read at T0 + 400: past a 60 s stream's retention, not the other's;
    what is queued expires at its own stream's retention."""
    ingest, consumer, store, _ = _ingest(tmp_path)
    stored(store, stream("s1", retention_s=60.0))
    stored(store, stream("s2", retention_s=200.0))
    stored(store, stream("s3"))
    consumer.batches = [[Msg(revocation("s-1", at=T0 + 300))]]
    assert 2 == ingest.step()
    assert ({}, {"pending": 1}, {"pending": 1}) == tuple(
        store.states(s) for s in ("s1", "s2", "s3")
    )
    assert 1 == store.expire(T0 + 400 + 200, 7 * 86400)
    assert ({"expired": 1}, {"pending": 1}) == (store.states("s2"), store.states("s3"))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_a_failed_push_is_retried_with_backoff_and_the_same_token(tmp_path: Path) -> None:
    """503, no answer, then 202: three tries of the same bytes, spaced 0.5 s then 1 s."""
    store, clock = Store(tmp_path), Clock()
    s1 = stream("s1")
    stored(store, s1)
    store.enqueue([("s1", "j1", b"tok1")], clock.now, 60)
    answers: list[tuple[int | None, bytes]] = [(503, b""), (None, b""), (202, b"")]
    sent: list[tuple[str, bytes]] = []

    def send(st: Stream, token: bytes, timeout: float) -> tuple[int | None, bytes]:
        sent.append((st.stream_id, token))
        return answers.pop(0)

    pusher = Pusher(store, PushOptions(5, 60), clock, send)
    assert 0.5 == pusher.round(s1)
    clock.now += 0.4
    assert 0.1 == round(pusher.round(s1), 6)  # not due yet: nothing sent
    clock.now += 0.1
    assert 1.0 == pusher.round(s1)
    clock.now += 1.0
    assert IDLE_WAIT_S == pusher.round(s1)
    assert [("s1", b"tok1")] * 3 == sent
    assert {"delivered": 1} == store.states("s1")


def test_a_refused_push_is_never_sent_again_and_the_next_one_goes(tmp_path: Path) -> None:
    """RFC 8935: a 400 is final for that SET, not for the stream."""
    store, clock = Store(tmp_path), Clock()
    s1 = stream("s1")
    stored(store, s1)
    store.enqueue([("s1", "j1", b"a"), ("s1", "j2", b"b")], clock.now, 60)
    answers = [(400, b'{"err":"invalid_key","description":"x"}'), (202, b"")]
    pusher = Pusher(store, PushOptions(5, 60), clock, lambda *_: answers.pop(0))
    pusher.round(s1)
    assert {"refused": 1, "delivered": 1} == store.states("s1")


def test_paused_and_poll_streams_are_not_pushed(tmp_path: Path) -> None:
    """A paused stream keeps its events; the receiver gets them once it is enabled again."""
    store, clock = Store(tmp_path), Clock()
    stored(store, stream("s1", status="paused"))
    store.enqueue([("s1", "j1", b"a")], clock.now, 60)
    sent: list[bytes] = []

    def send(st: Stream, token: bytes, timeout: float) -> tuple[int | None, bytes]:
        sent.append(token)
        return 202, b""

    pusher = Pusher(store, PushOptions(5, 60), clock, send)
    pusher.round(stream("s1", status="paused"))
    assert [] == sent
    pusher.round(stream("s1"))
    assert [b"a"] == sent
    store.delete_stream("s1")  # the poll stream alone
    stored(store, stream("p1", method=POLL_DELIVERY, endpoint_url=None))
    pusher.sync()
    assert [] == [t for t in pusher._threads]
