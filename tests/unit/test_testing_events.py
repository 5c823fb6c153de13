"""The one builder of authentication events (sessionwarden.testing.events) that the tests,
benchmarks, simulator and drill share: what it builds is what the enforcer accepts."""

from __future__ import annotations

from sessionwarden.contracts.codec import decode_auth_event, encode_dict
from sessionwarden.testing.events import (
    activity_doc,
    iso,
    login_doc,
    logout_doc,
    parse_ts,
    risk_change_doc,
    role_change_doc,
    session_revoked_doc,
    user_revoked_doc,
)

T = 1_800_000_000.25


def test_every_event_it_builds_is_accepted_by_the_codec() -> None:
    """A builder that drifted from the wire contract would make every harness test lie."""
    docs = [
        login_doc("s1", "u1", T),
        activity_doc("s1", "u1", T + 1),
        logout_doc("s1", "u1", T + 2),
        role_change_doc("u1", T + 3, granted=["editor"]),
        session_revoked_doc("s1", "u1", T + 4),
        user_revoked_doc("u1", T + 5, source=None),
        risk_change_doc("u1", T + 6, "high"),
        risk_change_doc("u1", T + 7, "high", "s1"),
    ]
    events = [decode_auth_event(encode_dict(d)) for d in docs]
    kinds = [e.type for e in events]
    assert ["login", "activity", "logout", "role_change", "session_revoked"] == kinds[:5]
    assert ["user_revoked", "risk_change", "risk_change"] == kinds[5:]
    assert ["ssf:test", None, "ssf:test"] == [e.source for e in events[4:7]]


def test_a_login_carries_what_the_callers_set() -> None:
    """The simulator sets ids, tenant, permissions and a skewed auth time; the benchmark an extra
    field: each lands in the document, in the wire's field order."""
    doc = login_doc(
        "s1", "u1", T, ["editor"], "high", "admin", tenant="bench", event_id="e-1",
        permissions=["editor:use"], auth_time=T - 60, source_ip="192.0.2.10",
    )  # fmt: skip
    assert {
        "type": "login",
        "event_id": "e-1",
        "occurred_at": "2027-01-15T08:00:00.250000+00:00",
        "user_id": "u1",
        "tenant": "bench",
        "session_id": "s1",
        "user_type": "admin",
        "risk_profile": "high",
        "roles": ["editor"],
        "permissions": ["editor:use"],
        "auth_method": "password",
        "auth_time": "2027-01-15T07:59:00.250000+00:00",
        "source_ip": "192.0.2.10",
    } == doc
    assert list(doc) == [
        "type", "event_id", "occurred_at", "user_id", "tenant", "session_id", "user_type",
        "risk_profile", "roles", "permissions", "auth_method", "auth_time", "source_ip",
    ]  # fmt: skip


def test_a_wire_timestamp_reads_back_as_the_same_moment() -> None:
    """Tests compare revocation times read from the topics with the times they sent."""
    assert (T, T) == (parse_ts(iso(T)), parse_ts(iso(T).replace("+00:00", "Z")))
