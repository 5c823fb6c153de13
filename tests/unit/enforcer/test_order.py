"""Out of order within a user, duplicates across restarts, and aborted batches."""

from __future__ import annotations

import uuid

from tests.unit.enforcer.factories import (
    T0,
    activity,
    login,
    logout,
    role_change,
)
from tests.unit.enforcer.harness import Harness


def test_a_logout_read_before_its_login_keeps_the_session_from_living() -> None:
    """Logout at 10s read first, its login (0s) read later: the session never goes live."""
    h = Harness()
    h.feed(logout(10), now=10)
    h.feed(login(0), now=11)
    assert [] == h.audits("session_started")
    assert [] == h.revocations()
    assert ["s1"] == [a["session_id"] for a in h.audits("login_after_logout")]
    assert 0 == h.tick(10_000)
    assert [] == h.revocations()


def test_a_logged_out_session_cannot_come_back_after_a_restore() -> None:
    """The marker a pre-login logout leaves is in the changelog like any ended session."""
    h = Harness()
    h.feed(logout(10), now=10)
    fresh = h.restored()
    fresh.state.begin()
    fresh.apply(login(0), T0 + 11)
    fresh.fire_due(T0 + 10_000, T0 + 10_000)
    fresh.state.commit()
    assert ["login_after_logout"] == [o.value["type"] for o in fresh.state.take_outputs()]


def test_an_older_grant_read_after_a_newer_removal_regrants_nothing() -> None:
    """Removal of editor at 20s, then a grant of editor stamped 10s: the role stays removed."""
    h = Harness()
    h.feed(login(0, roles=("viewer",)))
    h.feed(role_change(20, removed=("editor",)))
    h.feed(role_change(10, granted=("editor",)), now=21)
    assert [] == [o for o in h.outputs if o.value["type"] == "revalidation"]
    h.feed(login(22, "s2", roles=("viewer",)))
    h.feed(role_change(30, granted=("admin",)))
    revals = [o.value for o in h.outputs if o.value["type"] == "revalidation"]
    assert {("s1", ("viewer", "admin")), ("s2", ("viewer", "admin"))} == {
        (r["session_id"], tuple(r["roles"])) for r in revals
    }


def test_a_newer_grant_after_an_older_removal_applies() -> None:
    """Event time decides, not read order: a grant newer than the removal stands."""
    h = Harness()
    h.feed(login(0, roles=("viewer",)))
    h.feed(role_change(20, granted=("editor",)))
    h.feed(role_change(10, removed=("editor",)), now=21)
    assert [] == h.ended()
    assert [["editor"]] == [
        o.value["roles_granted"] for o in h.outputs if o.value["type"] == "revalidation"
    ]


def test_a_login_older_than_the_removal_of_its_role_is_revoked_at_once() -> None:
    """Removal of editor at 20s read before a login at 10s carrying editor: revoked at 20s."""
    h = Harness()
    h.feed(role_change(20, removed=("editor",)), now=20)
    h.feed(login(10, roles=("viewer", "editor")), now=21)
    assert 1 == len(h.audits("session_started"))
    assert [("s1", "permissions_revoked", 20.0)] == h.ended()
    assert [["editor"]] == [r["roles_removed"] for r in h.revocations()]


def test_a_login_newer_than_the_removal_keeps_its_role() -> None:
    """A session whose login is newer than the removal got the role afresh from its login."""
    h = Harness()
    h.feed(login(30, roles=("editor",)), now=30)
    h.feed(role_change(20, removed=("editor",)), now=31)
    assert [] == h.ended()


def test_a_duplicate_high_risk_activity_after_a_restore_changes_nothing() -> None:
    """A producer retry delivered after a restart must not audit the payment twice."""
    h = Harness()
    h.feed(login(0))
    eid = uuid.uuid4()
    h.feed(activity(5, action="payments.send", event_id=eid))
    fresh = h.restored()
    fresh.state.begin()
    fresh.apply(activity(5, action="payments.send", event_id=eid), T0 + 6)
    fresh.state.commit()
    assert [] == fresh.state.take_outputs()


def test_a_duplicate_login_after_logout_after_a_restore_is_not_a_new_anomaly() -> None:
    """The login_after_logout audit is emitted once per login, whatever restarts between."""
    h = Harness()
    h.feed(logout(10), now=10)
    eid = uuid.uuid4()
    h.feed(login(0, event_id=eid), now=11)
    fresh = h.restored()
    fresh.state.begin()
    fresh.apply(login(0, event_id=eid), T0 + 12)
    fresh.state.commit()
    assert [] == fresh.state.take_outputs()


def test_duplicate_use_of_an_ended_session_after_a_restore_is_audited_once() -> None:
    """Replayed requests on an ended session are one anomaly, not one per delivery."""
    h = Harness()
    h.feed(login(0))
    h.feed(logout(10))
    eid = uuid.uuid4()
    h.feed(activity(20, event_id=eid))
    assert 1 == len(h.audits("ended_session_used"))
    fresh = h.restored()
    fresh.state.begin()
    fresh.apply(activity(20, event_id=eid), T0 + 21)
    fresh.state.commit()
    assert [] == fresh.state.take_outputs()


def test_an_aborted_batch_restores_forget_entries_too() -> None:
    """Markers and users forgotten in an aborted batch must still be forgotten later."""
    h = Harness()
    h.feed(login(0))
    h.feed(logout(10))
    e = h.enforcer
    e.state.begin()
    assert 2 == e.state.forget_expired(T0 + 5000)
    e.state.abort()
    assert 1 == len(e.state.sessions) and 1 == len(e.state.users)
    e.state.begin()
    assert 2 == e.state.forget_expired(T0 + 5001)
    e.state.commit()
    assert ({}, {}) == (e.state.sessions, e.state.users)


def test_duplicates_are_per_tenant() -> None:
    """Two tenants may reuse an event id (seeded generators do); neither shadows the other."""
    h = Harness()
    eid = uuid.uuid4()
    h.feed(login(0, tenant="a", event_id=eid), login(0, tenant="b", event_id=eid))
    assert 2 == len(h.audits("session_started"))
