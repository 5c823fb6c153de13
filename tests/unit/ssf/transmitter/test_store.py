"""The transmitter's SQLite state: what was queued stays, and nothing is queued twice."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from sessionwarden.ssf.transmitter.store import NoSuchStream, Store
from sessionwarden.ssf.transmitter.streams import Stream, StreamError
from tests.unit.ssf.transmitter.factories import T0, stored, stream


def test_streams_subjects_and_events_survive_reopening(tmp_path: Path) -> None:
    """A restart (a new Store on the same directory) finds everything a crash left."""
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.add_subject("s1", {"format": "opaque", "id": "alice"})
    assert 1 == store.enqueue([("s1", "j1", b"tok")], T0, 60)
    store.close()
    again = Store(tmp_path)
    assert [stream("s1")] == again.streams()
    assert {"s1": [{"format": "opaque", "id": "alice"}]} == {
        k: list(v) for k, v in again.subjects().items()
    }
    assert ["j1"] == [q.jti for q in again.due("s1", T0, 10)]


def test_the_same_jti_is_never_queued_twice_even_after_delivery(tmp_path: Path) -> None:
    """A batch read again after a crash must not be delivered as new."""
    store = Store(tmp_path)
    stored(store, stream("s1"), stream("s2"))
    assert 2 == store.enqueue([("s1", "j1", b"a"), ("s2", "j1", b"b")], T0, 60)
    assert store.settle("s1", "j1", "delivered")
    assert 0 == store.enqueue([("s1", "j1", b"a"), ("s2", "j1", b"b")], T0 + 1, 60)
    assert {"delivered": 1} == store.states("s1")
    assert {"pending": 1} == store.states("s2")


def test_retries_wait_their_turn_and_keep_order(tmp_path: Path) -> None:
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.enqueue([("s1", "j1", b"a"), ("s1", "j2", b"b")], T0, 60)
    store.retry_at("s1", "j1", 1, T0 + 5)
    assert ["j2"] == [q.jti for q in store.due("s1", T0 + 1, 10)]
    assert T0 == store.next_due("s1")
    assert ["j1", "j2"] == [q.jti for q in store.due("s1", T0 + 5, 10)]
    assert 1 == store.due("s1", T0 + 5, 10)[0].attempts


def test_events_past_their_retention_expire_and_settled_ones_are_forgotten(
    tmp_path: Path,
) -> None:
    """A paused stream keeps its events for the retention, not for ever."""
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.enqueue([("s1", "j1", b"a"), ("s1", "j2", b"b")], T0, 60)
    store.settle("s1", "j2", "delivered")
    assert 0 == store.expire(T0 + 59, 60)
    assert (["j1"], False) == ([q.jti for q in store.pending("s1", T0 + 59, 10)[0]], False)
    assert 1 == store.expire(T0 + 60, 60)
    assert {"expired": 1, "delivered": 1} == store.states("s1")
    store.expire(T0 + 121, 60)
    assert {} == store.states("s1")


def test_poll_pages_say_when_more_wait_and_deleting_a_stream_deletes_its_events(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.enqueue([("s1", f"j{i}", b"t") for i in range(3)], T0, 60)
    page, more = store.pending("s1", T0, 2)
    assert (["j0", "j1"], True) == ([q.jti for q in page], more)
    store.delete_stream("s1")
    assert ([], None, {}) == (store.streams(), store.stream("s1"), store.states("s1"))


def test_a_stream_stored_before_streams_had_their_own_retention_gets_the_default(
    tmp_path: Path,
) -> None:
    """State directories of earlier versions: the stream document has no retention_s."""
    store = Store(tmp_path)
    doc = orjson.loads(orjson.dumps(dataclasses.asdict(stream("old"))))
    del doc["retention_s"]
    with sqlite3.connect(store.path) as db:
        db.execute(
            "INSERT INTO streams (stream_id, owner, doc) VALUES (?, ?, ?)",
            ("old", "rp", orjson.dumps(doc)),
        )
    assert [stream("old")] == store.streams()
    assert None is store.streams()[0].retention_s


def test_each_row_keeps_its_streams_retention(tmp_path: Path) -> None:
    """A paused stream asking for 60 s loses its events after 60 s; the others keep theirs."""
    store = Store(tmp_path)
    stored(store, stream("short"), stream("long"))
    store.enqueue([("short", "j1", b"a"), ("long", "j1", b"b")], T0, {"short": 60, "long": 600})
    assert 1 == store.expire(T0 + 61, 600)
    assert ({"expired": 1}, {"pending": 1}) == (store.states("short"), store.states("long"))
    assert [] == store.pending("short", T0 + 61, 10)[0]


def test_subjects_are_read_again_only_after_they_changed(tmp_path: Path) -> None:
    """The Kafka reader asks every batch: 10,000 subjects a stream must not be parsed each
    time (nor the file read under the store's lock), yet a change shows at once."""
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.add_subject("s1", {"format": "opaque", "id": "alice"})
    first = store.subjects()
    assert first is store.subjects()
    store.add_subject("s1", {"format": "opaque", "id": "bob"})
    assert 2 == len(store.subjects()["s1"])
    store.remove_subject("s1", {"format": "opaque", "id": "alice"})
    assert [{"format": "opaque", "id": "bob"}] == list(store.subjects()["s1"])
    store.delete_stream("s1")
    assert {} == store.subjects()


def test_a_stream_deleted_after_it_was_read_is_not_written_again(tmp_path: Path) -> None:
    """A request reads the stream, a delete commits, then the request writes: the update
    must not bring the stream back, nor the subject or event stay behind without it."""
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.delete_stream("s1")
    with pytest.raises(NoSuchStream):
        store.change_stream("s1", "rp", lambda seen: replace(seen, description="late"))
    with pytest.raises(NoSuchStream):
        store.add_subject("s1", {"format": "opaque", "id": "alice"})
    with pytest.raises(NoSuchStream):
        store.remove_subject("s1", {"format": "opaque", "id": "alice"})
    assert 0 == store.enqueue([("s1", "j1", b"a")], T0, 60)
    assert (None, {}, {}) == (store.stream("s1"), store.subjects(), store.states("s1"))


def test_an_update_is_only_for_the_owner_of_the_stream(tmp_path: Path) -> None:
    """The stream's id with another owner is not that owner's stream: nothing written."""
    store = Store(tmp_path)
    stored(store, stream("s1"))
    with pytest.raises(NoSuchStream):
        store.change_stream("s1", "other", lambda seen: replace(seen, description="mine now"))
    assert stream("s1") == store.stream("s1")


def test_a_change_is_made_to_the_stream_as_stored_when_it_is_written(tmp_path: Path) -> None:
    """Two changes in turn: the second is made to what the first stored, not to what was
    read before it (the status set in between stays)."""
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.change_stream("s1", "rp", lambda seen: replace(seen, status="paused"))
    done = store.change_stream("s1", "rp", lambda seen: replace(seen, description="new"))
    assert stream("s1", status="paused", description="new") == done.stream == store.stream("s1")


def test_a_refused_change_writes_nothing(tmp_path: Path) -> None:
    """A change that raises (a request refused) leaves the stream and its events as they were;
    nor may a change move a stream to another id or owner."""
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.enqueue([("s1", "j1", b"a")], T0, 60)

    def refuse(seen: Stream) -> Stream:
        raise StreamError(400, "no")

    with pytest.raises(StreamError):
        store.change_stream("s1", "rp", refuse)
    with pytest.raises(ValueError, match="id and owner"):
        store.change_stream(
            "s1", "rp", lambda seen: replace(seen, owner="other", status="disabled")
        )
    assert (stream("s1"), {"pending": 1}) == (store.stream("s1"), store.states("s1"))


def test_a_stream_stored_disabled_drops_its_pending_events_in_the_same_transaction(
    tmp_path: Path,
) -> None:
    """Disabling and dropping were two transactions: a stream enabled again in between lost
    its pending events all the same."""
    store = Store(tmp_path)
    stored(store, stream("s1"))
    store.enqueue([("s1", "j1", b"a"), ("s1", "j2", b"b")], T0, 60)
    store.settle("s1", "j1", "delivered")
    done = store.change_stream("s1", "rp", lambda seen: replace(seen, status="disabled"))
    assert (1, {"delivered": 1, "dropped": 1}) == (done.dropped, store.states("s1"))
    paused = store.change_stream("s1", "rp", lambda seen: replace(seen, status="paused"))
    assert 0 == paused.dropped


def test_subjects_and_events_added_while_streams_are_deleted_leave_no_orphans(
    tmp_path: Path,
) -> None:
    """Adders and the Kafka reader racing deletes: whatever wins, no subject or event is
    left for a stream that is gone."""
    store = Store(tmp_path)
    ids = [f"s{n}" for n in range(40)]
    stored(store, *(stream(sid) for sid in ids))
    start = threading.Barrier(3)

    def add() -> None:
        start.wait()
        for sid in reversed(ids):  # meeting the deletes halfway
            with contextlib.suppress(NoSuchStream):
                store.add_subject(sid, {"format": "opaque", "id": "alice"})

    def enqueue() -> None:
        start.wait()
        for sid in reversed(ids):
            store.enqueue([(sid, "j1", b"a")], T0, 60)

    def delete() -> None:
        start.wait()
        for sid in ids:
            store.delete_stream(sid)

    threads = [threading.Thread(target=fn) for fn in (add, enqueue, delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert ([], {}) == (store.streams(), store.subjects())
    assert [] == [sid for sid in ids if store.states(sid)]
