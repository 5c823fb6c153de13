"""Alert ids, the cooldown and the alert record, with plain numbers."""

from __future__ import annotations

import uuid

from sessionwarden.contracts.codec import decode_alert, encode_dict
from sessionwarden.detect.alerts import Cooldown, CooldownRecord, alert_id, build_alert
from sessionwarden.detect.detectors import Trigger
from tests.unit.detect.factories import T0, FakeClock


def trigger(event_id: str, severity: str = "medium", first_seen: float = T0) -> Trigger:
    return Trigger(
        kind="ended_session_used",
        severity=severity,  # type: ignore[arg-type]
        event_id=event_id,
        first_seen=first_seen,
        last_seen=first_seen,
        summary="docs.read on /doc with a session ended by logout",
        event_ids=(event_id,),
        session_ids=("sess-1",),
    )


def test_alert_ids_are_the_same_for_the_same_trigger_across_calls() -> None:
    """A re-emitted alert (replay, restart) must carry the id subscribers already saw."""
    a = alert_id("repeated_expirations", "alice", T0, "ev-1")
    # Pinned: changing the derivation would make upgraded workers re-emit under new ids.
    assert uuid.UUID("7633a716-82fb-5b69-b283-a127aa9f5ec9") == a
    assert a == alert_id("repeated_expirations", "alice", T0 + 0.0001, "ev-1")


def test_alert_ids_differ_by_kind_user_window_start_and_trigger() -> None:
    """Distinct alerts never collide."""
    base = ("repeated_expirations", "alice", T0, "ev-1")
    variants = [
        ("concurrent_sessions", "alice", T0, "ev-1"),
        ("repeated_expirations", "bob", T0, "ev-1"),
        ("repeated_expirations", "alice", T0 + 0.001, "ev-1"),
        ("repeated_expirations", "alice", T0, "ev-2"),
    ]
    ids = {alert_id(*base), *(alert_id(*v) for v in variants)}
    assert 5 == len(ids)


def test_repeats_within_the_cooldown_are_withheld_and_the_next_alert_counts_them() -> None:
    """One alert per cooldown period, but the responder still learns how many were held."""
    clock = FakeClock()
    cooldown = Cooldown(300)
    first = cooldown.decide(None, trigger("e1"), clock())
    assert (True, 0) == (first.emit, first.suppressed)
    record = first.record
    emitted = []
    for i, step in enumerate((100, 100, 99.999)):
        decision = cooldown.decide(record, trigger(f"e{i + 2}"), clock.advance(step))
        emitted.append(decision.emit)
        record = decision.record
    assert [False, False, False] == emitted
    assert record is not None and 3 == record.suppressed
    after = cooldown.decide(record, trigger("e5"), clock.advance(0.001))
    assert (True, 3) == (after.emit, after.suppressed)
    assert after.record is not None
    assert (T0 + 300, 0) == (after.record.last_at, after.record.suppressed)


def test_a_more_severe_repeat_breaks_through_the_cooldown() -> None:
    """An escalating situation must not wait out a cooldown started by a milder alert."""
    cooldown = Cooldown(300)
    record = CooldownRecord(T0, "medium", 2, ("e1",))
    decision = cooldown.decide(record, trigger("e2", severity="critical"), T0 + 1)
    assert (True, 2) == (decision.emit, decision.suppressed)
    same = cooldown.decide(decision.record, trigger("e3", severity="critical"), T0 + 2)
    assert False is same.emit


def test_a_replayed_trigger_is_neither_emitted_nor_counted() -> None:
    """A crash replay must not inflate the suppressed count."""
    record = CooldownRecord(T0, "medium", 1, ("e1", "e2"))
    decision = Cooldown(300).decide(record, trigger("e2"), T0 + 10)
    assert (False, None) == (decision.emit, decision.record)


def test_the_alert_record_matches_the_wire_schema() -> None:
    """Every alert must decode with the published model; bounded fields stay bounded."""
    long = trigger("6f1c9c7e-3c1a-4c55-9a57-3c1d2e7f9b20")
    long = Trigger(**{**{f: getattr(long, f) for f in long.__slots__}, "summary": "x" * 600})
    doc = build_alert(long, "alice", "acme", 4, T0 + 5)
    alert = decode_alert(encode_dict(doc))
    assert ("ended_session_used", "medium", 4) == (alert.kind, alert.severity, alert.suppressed)
    assert alert_id("ended_session_used", "alice", T0, long.event_id) == alert.alert_id
    assert 512 == len(alert.summary)
    assert T0 == alert.first_seen.timestamp()
    assert [uuid.UUID(long.event_id)] == alert.evidence.event_ids
