"""Producer clocks cannot bend deadlines: effective event time e = min(occurred_at, received)."""

from __future__ import annotations

import uuid

from sessionwarden.enforcer.engine.core import PartitionEnforcer
from tests.unit.enforcer.factories import T0, activity, login, logout, policy
from tests.unit.enforcer.harness import Harness


def test_a_future_stamp_never_extends_idle_beyond_receive_time() -> None:
    """Activity stamped 25s ahead (inside the 30s tolerance) read at 10s counts as made at 10s."""
    h = Harness()
    h.feed(login(0))
    h.feed(activity(35), now=10)
    assert 0 == h.tick(109.9)
    assert 1 == h.tick(110)
    assert [("s1", "idle_timeout", 110.0)] == h.ended()


def test_a_future_stamp_does_not_cut_a_live_session_early() -> None:
    """Activity stamped past the idle deadline but read before it keeps the session alive."""
    h = Harness()
    h.feed(login(0))
    h.feed(activity(110), now=85)
    assert [] == h.ended()
    assert [] == h.audits("ended_session_used")
    assert 0 == h.tick(184.9)
    assert 1 == h.tick(185)
    assert [("s1", "idle_timeout", 185.0)] == h.ended()


def test_a_future_login_stamp_does_not_extend_the_absolute_deadline() -> None:
    """Login stamped 20s ahead, read at 0: the absolute deadline counts from 0."""
    h = Harness()
    h.feed(login(20, risk="high"), now=0)
    started = h.audits("session_started")[0]
    assert T0 + 400 == started["absolute_deadline"].timestamp()


def test_skew_is_judged_against_the_receive_time() -> None:
    """An event stamped 35s past its broker append time is rejected even if read much later."""
    e = PartitionEnforcer(policy())
    e.state.begin()
    reason = e.apply(activity(35), T0 + 100, received=T0).detail
    assert reason is not None and "35.0s ahead" in reason
    assert None is e.apply(activity(25), T0 + 100, received=T0).detail


def test_a_future_auth_time_is_not_trusted() -> None:
    """auth_time one hour ahead must not pass a 60s max_auth_age check; step-up is required."""
    h = Harness()
    h.feed(login(0, auth_age=-3600))
    h.feed(activity(12, action="payments.send"))
    assert [("s1", "step_up_required", 12.0)] == h.ended()
    hr = h.audits("high_risk_operation")[0]
    assert (False, None) == (hr["allowed"], hr["auth_age_s"])
    assert True is h.audits("session_started")[0]["auth_time_untrusted"]


def test_auth_time_after_the_login_itself_is_not_trusted() -> None:
    """Authentication cannot happen after the session it started: 5s later is untrusted."""
    h = Harness()
    h.feed(login(0, auth_age=-5))
    h.feed(activity(1, action="payments.send"))
    assert [("s1", "step_up_required", 1.0)] == h.ended()
    assert True is h.audits("session_started")[0]["auth_time_untrusted"]


def test_a_trusted_auth_time_is_not_flagged() -> None:
    """The ordinary case: authenticated before the login, fresh enough for the payment."""
    h = Harness()
    h.feed(login(0, auth_age=10))
    assert False is h.audits("session_started")[0]["auth_time_untrusted"]
    h.feed(activity(5, action="payments.send"))
    assert [(True, 15.0)] == [
        (a["allowed"], a["auth_age_s"]) for a in h.audits("high_risk_operation")
    ]


def test_activity_read_after_its_deadline_fired_is_audited_with_its_delay() -> None:
    """Activity made at 95s, appended at 103s after the idle deadline (100s) fired: audited."""
    h = Harness()
    h.feed(login(0))
    h.tick(100)
    late = activity(95)
    h.feed(late, now=103)
    [after] = h.audits("activity_after_revocation")
    assert (late.event_id, 8.0, 100.0, "idle_timeout") == (
        after["cause_event_id"],
        after["delay_s"],
        after["deadline"].timestamp() - T0,
        after["reason"],
    )
    assert 1 == h.enforcer.stats["activity_after_revocation"]
    assert [("s1", "idle_timeout", 100.0)] == h.ended()  # the session stays ended


def test_activity_read_after_a_logout_is_not_a_producer_delay() -> None:
    """Activity made before a logout and read after it: nothing to audit, nothing changes."""
    h = Harness()
    h.feed(login(0))
    h.feed(activity(5, event_id=uuid.uuid4()), now=5)
    h.feed(logout(10))
    h.feed(activity(9), now=11)
    assert [] == h.audits("activity_after_revocation")
    assert [] == h.audits("ended_session_used")


def test_activity_made_at_the_very_deadline_ends_the_session_quietly() -> None:
    """Deadlines are inclusive: a request at exactly the deadline neither extends the session
    nor counts as use of an ended one or as a producer delay."""
    h = Harness()
    h.feed(login(0))
    h.feed(activity(100), now=101)
    assert [("s1", "idle_timeout", 100.0)] == h.ended()
    assert [] == h.audits("ended_session_used") + h.audits("activity_after_revocation")
