"""Identity signals from outside (session_revoked, user_revoked, risk_change), with a fake clock."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter

from sessionwarden.contracts.outputs import AuditEvent, RevocationRecord
from sessionwarden.enforcer.engine.sessions import User, decode_user_value, encode_user_value
from sessionwarden.policy import Policy, parse_policy
from tests.unit.enforcer.factories import (
    POLICY_TOML,
    T0,
    activity,
    login,
    risk_change,
    session_revoked,
    user_revoked,
)
from tests.unit.enforcer.harness import Harness

AUDIT = TypeAdapter(AuditEvent)
REVOCATION = TypeAdapter(RevocationRecord)


def _strict_policy() -> Policy:
    """The unit policy plus a ``critical`` profile that tightens both timeouts."""
    extra = '\n[risk_profiles.critical]\nidle = "30s"\nabsolute = "300s"\n'
    return parse_policy(POLICY_TOML + extra, "unit.toml")


def _valid(h: Harness) -> None:
    for out in h.outputs:
        if out.topic == "audit":
            AUDIT.validate_python(out.value)
        elif out.topic == "revocations":
            REVOCATION.validate_python(out.value)


def test_session_revoked_ends_the_session_with_reason_signal() -> None:
    """A CAEP session-revoked ends the session at the event's time, citing it."""
    h = Harness()
    h.feed(login(0))
    ev = session_revoked(30)
    h.feed(ev)
    assert [("s1", "signal", 30.0)] == h.ended()
    assert ev.event_id == h.revocations()[0]["cause_event_id"]
    ended = h.audits("session_ended")[0]
    assert ("signal", "session_revoked", "ssf:idp") == (
        ended["reason"],
        ended["signal"],
        ended["source"],
    )
    _valid(h)


def test_session_revoked_without_source_leaves_source_out() -> None:
    """A signal that names no source writes no ``source`` key, as other records do."""
    h = Harness()
    h.feed(login(0))
    h.feed(session_revoked(30, source=None, signal="credential_change"))
    ended = h.audits("session_ended")[0]
    assert "credential_change" == ended["signal"]
    assert "source" not in ended


def test_other_session_ends_have_no_signal_fields() -> None:
    """A logout's session_ended keeps its old shape: no signal, no source."""
    h = Harness()
    h.feed(login(0))
    h.tick(100)
    ended = h.audits("session_ended")[0]
    assert "signal" not in ended and "source" not in ended


def test_session_revoked_of_an_unknown_foreign_or_ended_session_changes_nothing() -> None:
    """Like a logout of an unknown session: nothing to end, no record written."""
    h = Harness()
    h.feed(login(0, sid="s1", user="u1"))
    h.feed(
        session_revoked(10, sid="nope"),
        session_revoked(10, sid="s1", user="u2"),  # another user's session
        session_revoked(10, sid="s1", tenant="other"),  # another tenant's
    )
    assert [] == h.ended()
    h.tick(100)
    h.feed(session_revoked(150))
    assert [("s1", "idle_timeout", 100.0)] == h.ended()
    assert 4 == h.enforcer.stats["signal_ignored"]


def test_session_revoked_after_the_deadline_ends_it_at_its_deadline() -> None:
    """A session idle past its deadline (not fired yet) ended then, not at the signal."""
    h = Harness()
    h.feed(login(0))
    h.feed(session_revoked(150))
    assert [("s1", "idle_timeout", 100.0)] == h.ended()


def test_user_revoked_ends_every_session_that_began_by_then() -> None:
    """RISC credential-compromise ends all the user's live sessions, not a later one nor
    another user's."""
    h = Harness()
    h.feed(login(0, sid="a"), login(5, sid="b"), login(5, sid="x", user="u2"))
    h.feed(login(40, sid="later"))
    h.feed(user_revoked(30))  # read after the later login, made before it
    assert [("a", "signal", 30.0), ("b", "signal", 30.0)] == h.ended()
    ends = h.audits("session_ended")
    assert {("credential_compromise", "keycloak:main")} == {
        (d["signal"], d["source"]) for d in ends
    }
    assert 2 == h.enforcer.state.live_sessions()
    _valid(h)


def test_a_signal_read_again_changes_nothing() -> None:
    """Same event id: the in-memory filter drops it; after a restore, the sessions it ended
    are ended, so it finds nothing to end."""
    h = Harness()
    h.feed(login(0, sid="a"), login(1, sid="b"))
    ev = user_revoked(30, event_id=uuid.uuid4())
    h.feed(ev)
    assert 2 == len(h.revocations())
    h.feed(ev)
    assert 2 == len(h.revocations())
    h.enforcer = h.restored()
    h.feed(ev)
    assert 2 == len(h.revocations())


def test_risk_change_tightens_the_absolute_deadline() -> None:
    """low -> high: the absolute deadline moves from 1000s to 400s after login."""
    h = Harness()
    h.feed(login(0))
    ev = risk_change(50, "high")
    h.feed(ev)
    for t in (90, 180, 270, 360):
        h.feed(activity(t))
    assert 0 == h.tick(399)
    assert 1 == h.tick(400)
    assert [("s1", "absolute_timeout", 400.0)] == h.ended()
    doc = h.audits("session_risk_changed")[0]
    expected: dict[str, Any] = {
        "session_id": "s1",
        "risk_profile_before": "low",
        "risk_profile": "high",
        "idle_timeout_before_s": 100.0,
        "idle_timeout_s": 100.0,
        "absolute_deadline_before": T0 + 1000,
        "absolute_deadline": T0 + 400,
        "occurred_at": T0 + 50,
        "ended": False,
        "source": "ssf:idp",
        "cause_event_id": ev.event_id,
    }
    got = {k: v.timestamp() if hasattr(v, "timestamp") else v for k, v in doc.items()}
    assert expected == {k: got[k] for k in expected}
    _valid(h)


def test_risk_change_tightens_the_idle_timeout() -> None:
    """A critical profile's 30s idle counts from the last activity, as any idle timeout."""
    h = Harness(_strict_policy())
    h.feed(login(0))
    h.feed(activity(5))
    h.feed(risk_change(10, "critical"))
    assert 0 == h.tick(34.9)
    assert 1 == h.tick(35)
    assert [("s1", "idle_timeout", 35.0)] == h.ended()


def test_risk_change_never_loosens() -> None:
    """high -> low keeps the high profile's 400s absolute deadline; no record is written."""
    h = Harness()
    h.feed(login(0, risk="high"))
    h.feed(risk_change(10, "low"))
    assert [] == h.audits("session_risk_changed")
    for t in (90, 180, 270, 360):
        h.feed(activity(t))
    h.tick(400)
    assert [("s1", "absolute_timeout", 400.0)] == h.ended()


def test_risk_changes_in_either_order_give_the_same_deadlines() -> None:
    """Deadlines take the tighter of old and new, so the read order does not matter."""
    results = []
    for order in ((0, 1), (1, 0)):
        h = Harness(_strict_policy())
        h.feed(login(0))
        changes = [risk_change(10, "high"), risk_change(20, "critical")]
        h.feed(*(changes[i] for i in order))
        sess = h.enforcer.state.sessions[("acme", "s1")]
        results.append((sess.idle_timeout, sess.absolute_deadline - T0))  # type: ignore[union-attr]
    assert [(30.0, 300.0), (30.0, 300.0)] == results


def test_risk_change_past_a_tighter_deadline_revokes_at_once() -> None:
    """Active for 450s under low (absolute 1000s), then high (400s): ended at the event's
    time with reason absolute_timeout."""
    h = Harness()
    h.feed(login(0))
    for t in (90, 180, 270, 360, 440):
        h.feed(activity(t))
    ev = risk_change(450, "high")
    h.feed(ev)
    assert [("s1", "absolute_timeout", 450.0)] == h.ended()
    assert ev.event_id == h.revocations()[0]["cause_event_id"]
    assert h.audits("session_risk_changed")[0]["ended"] is True
    _valid(h)


def test_risk_change_of_one_session_leaves_the_others() -> None:
    """A session_id names the one session it concerns."""
    h = Harness()
    h.feed(login(0, sid="a"), login(0, sid="b"))
    h.feed(risk_change(10, "high", sid="b"))
    state = h.enforcer.state.sessions
    assert (T0 + 1000, T0 + 400) == (
        state[("acme", "a")].absolute_deadline,  # type: ignore[union-attr]
        state[("acme", "b")].absolute_deadline,  # type: ignore[union-attr]
    )


def test_risk_change_spares_sessions_that_began_after_it() -> None:
    """A login newer than the change carries its own risk profile."""
    h = Harness()
    h.feed(login(30))
    h.feed(risk_change(10, "high"))
    assert [] == h.audits("session_risk_changed")


def test_tightened_deadlines_survive_a_restore() -> None:
    """The changelog carries the new timeouts: a restored enforcer fires at 400s."""
    h = Harness()
    h.feed(login(0))
    h.feed(risk_change(50, "high"))
    h.enforcer = h.restored()
    for t in (90, 180, 270, 360):
        h.feed(activity(t))
    h.tick(400)
    assert [("s1", "absolute_timeout", 400.0)] == h.ended()
    assert "high" == h.audits("session_risk_changed")[0]["risk_profile"]


def test_log_lines_name_the_signal_and_the_risk_change_never_the_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One line per lifecycle record: the ending signal and its source, the risk profiles; the
    session by its hash only."""
    h = Harness()
    with caplog.at_level("INFO", logger="sessionwarden.enforcer.outputs"):
        h.feed(login(0, sid="a"), login(0, sid="b"))
        h.feed(risk_change(10, "high", sid="b"))
        h.feed(session_revoked(20, sid="a", signal="session_revoked"))
    lines = {r.getMessage(): r.__dict__ for r in caplog.records}
    ended, changed = lines["session ended"], lines["session risk changed"]
    assert ("signal", "session_revoked", "ssf:idp") == (
        ended["reason"],
        ended["signal"],
        ended["source"],
    )
    assert ("low", "high", False) == (
        changed["risk_profile_before"],
        changed["risk_profile"],
        changed["ended"],
    )
    assert ended["session"] not in ("a", "b") and len(ended["session"]) >= 8


def test_a_login_older_than_a_user_revocation_read_after_it_ends_at_once() -> None:
    """A compromised account's session whose login is read late must not go live: it ends at
    the revocation, as ``signal``; a login newer than the revocation goes live."""
    h = Harness()
    ev = user_revoked(30, signal="account_purged")
    h.feed(ev)  # the user has no session yet
    h.feed(login(20, sid="old"), login(40, sid="new"))
    assert [("old", "signal", 30.0)] == h.ended()
    assert ev.event_id == h.revocations()[0]["cause_event_id"]
    ended = h.audits("session_ended")[0]
    assert ("account_purged", "keycloak:main") == (ended["signal"], ended["source"])
    assert 1 == h.enforcer.state.live_sessions()
    _valid(h)


def test_a_user_revocation_is_remembered_across_a_restore_and_a_copy_changes_nothing() -> None:
    """The changelog keeps the revocation and its id: after a restore, a late login older than
    it still ends, and a copy of the signal (its id no longer in memory) is a duplicate."""
    h = Harness()
    h.feed(login(0, sid="a"))
    ev = user_revoked(30)
    h.feed(ev)
    h.enforcer = h.restored()
    h.feed(ev)
    assert 1 == h.enforcer.stats["duplicate"]
    h.feed(login(10, sid="late"))
    assert [("a", "signal", 30.0), ("late", "signal", 30.0)] == h.ended()


def test_a_late_login_past_its_own_deadline_ends_at_that_deadline() -> None:
    """Idle at 100 s before the revocation at 150 s: it ends idle, as everywhere."""
    h = Harness()
    h.feed(user_revoked(150))
    h.feed(login(0, sid="late"), now=160)
    assert [("late", "idle_timeout", 100.0)] == h.ended()


def test_a_user_record_carries_its_revocation_only_when_it_has_one() -> None:
    """Records of users never revoked keep their bytes; a revoked one round-trips."""
    plain = User(("acme", "u1"), frozenset({"viewer"}), None, ("e1",), 5.0)
    assert 6 == len(orjson.loads(encode_user_value(plain)))
    revoked = User(("acme", "u1"), frozenset(), None, ("e2",), 9.0, None, (3.5, "x", None, "e2"))
    assert (3.5, "x", None, "e2") == decode_user_value(encode_user_value(revoked)).revoked
