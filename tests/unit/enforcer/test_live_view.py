"""The live-session view: the enforcer's own changelog records, folded by its own restore,
listed per tenant with their deadlines and what ends them next."""

from __future__ import annotations

import orjson

from sessionwarden.enforcer.engine.live import LiveSession, LiveView, next_end
from sessionwarden.enforcer.engine.sessions import Ended, Session, encode_session_value
from tests.unit.enforcer.factories import T0, activity, login, logout, policy
from tests.unit.enforcer.harness import Harness


def _view(h: Harness, tenant: str = "acme", user: str | None = None) -> LiveView:
    view = LiveView(tenant, user, policy())
    for key, value in h.changelog:
        view.add(0, key, value)
    return view


def test_a_live_session_shows_its_start_activity_deadlines_and_next_end() -> None:
    """What an operator reads must be the enforcer's own deadlines, not a recomputation."""
    h = Harness()
    h.feed(login(0, "s1", user="u1"))  # defaults: idle 100 s, absolute 1000 s
    h.feed(activity(30, "s1", user="u1"))

    listing = _view(h).listing()

    assert [
        LiveSession(
            tenant="acme",
            session_id="s1",
            user_id="u1",
            user_type="customer",
            risk_profile="low",
            started_at=T0,
            last_activity=T0 + 30,
            idle_deadline=T0 + 130,
            absolute_deadline=T0 + 1000,
            ends_at=T0 + 130,
            ends_by="idle_timeout",
            partition=0,
        )
    ] == listing.sessions


def test_the_absolute_deadline_is_next_when_it_comes_before_the_idle_one() -> None:
    """Activity late in a session moves the idle deadline past the absolute one."""
    h = Harness()
    h.feed(login(0, "s1", user="u1", risk="high"))  # absolute 400 s
    for t in (90, 180, 270, 350):  # each within the idle timeout (100 s) of the last
        h.feed(activity(t, "s1", user="u1"))

    (only,) = _view(h).listing().sessions

    assert (T0 + 450, T0 + 400, "absolute_timeout") == (
        only.idle_deadline,
        only.ends_at,
        only.ends_by,
    )


def test_logged_out_and_expired_sessions_are_not_listed_but_counted_as_ended() -> None:
    """A session the enforcer ended is gone from the view, whatever ended it."""
    h = Harness()
    h.feed(login(0, "s1", user="u1"), login(0, "s2", user="u2"), login(120, "s3", user="u1"))
    h.feed(logout(10, "s2", user="u2"))
    h.tick(150)  # s1's idle deadline (100 s) passed; s3 (login at 120) still live

    listing = _view(h).listing()

    assert (["s3"], 2) == ([s.session_id for s in listing.sessions], listing.ended)


def test_another_tenants_sessions_never_show_and_a_user_filter_keeps_one_user() -> None:
    """Tenants may reuse each other's user and session ids; a view is of one tenant."""
    h = Harness()
    h.feed(
        login(0, "s1", user="u1"),
        login(1, "s2", user="u2"),
        login(2, "s1", user="u1", tenant="globex"),
        login(3, "s9", user="u1", tenant="globex"),
    )

    acme = _view(h).listing().sessions
    globex_u1 = _view(h, "globex", "u1").listing().sessions
    unknown = _view(h, "initech").listing()

    assert [("acme", "s1"), ("acme", "s2")] == [(s.tenant, s.session_id) for s in acme]
    assert [("globex", "s1"), ("globex", "s9")] == [(s.tenant, s.session_id) for s in globex_u1]
    assert ([], 0) == (unknown.sessions, unknown.ended)


def test_the_view_lists_what_a_full_restore_of_the_same_changelog_holds() -> None:
    """One decoder: the view and the enforcer's restore agree on every live session."""
    h = Harness()
    h.feed(*(login(i, f"s{i}", user=f"u{i % 4}") for i in range(12)))
    h.feed(activity(40, "s3", user="u3"), logout(41, "s4", user="u0"))
    h.tick(105)  # the untouched early sessions reach their idle deadline

    restored = h.restored()
    expected = sorted(
        (s.session_id, s.deadline())
        for s in restored.state.sessions.values()
        if isinstance(s, Session)
    )

    assert expected == sorted(
        (s.session_id, (s.ends_at, s.ends_by)) for s in _view(h).listing().sessions
    )


def test_a_record_that_does_not_decode_is_skipped_and_counted() -> None:
    """One bad record must not hide every other session of the tenant."""
    h = Harness()
    h.feed(login(0, "s1", user="u1"), login(0, "s2", user="u2"))
    view = LiveView("acme", None, policy())
    view.add(0, '["s","acme","bad"]', b'["S", "truncated"')
    view.add(0, '["s","acme"', b"{}")
    for key, value in h.changelog:
        view.add(0, key, value)

    listing = view.listing()

    assert (["s1", "s2"], 2) == ([s.session_id for s in listing.sessions], listing.unreadable)


def test_a_session_under_the_older_key_form_is_read() -> None:
    """Changelogs written before tenant-scoped keys still hold ``s|<id>`` records."""
    sess = Session(("acme", "old"), "u1", "customer", "low", T0, T0, T0, 100.0, T0 + 1000, (), ())
    other = Session(("globex", "o2"), "u1", "customer", "low", T0, T0, T0, 100.0, T0 + 1000, (), ())
    view = LiveView("acme", None, policy())
    view.add(0, "s|old", encode_session_value(sess))
    view.add(0, "s|o2", encode_session_value(other))

    assert [("acme", "old", T0 + 100)] == [
        (s.tenant, s.session_id, s.ends_at) for s in view.listing().sessions
    ]


def test_an_ended_record_has_no_next_end() -> None:
    """Only a live session has a deadline left."""
    live = Session(("acme", "a"), "u1", "customer", "low", T0, T0 + 5, T0, 100.0, T0 + 50, (), ())
    ended = Ended(("acme", "b"), "u1", "logout", T0, T0 + 10)

    assert ((T0 + 50, "absolute_timeout"), None) == (next_end(live), next_end(ended))


def test_records_of_partitions_are_folded_apart() -> None:
    """A key's records are ordered within a partition only; each gets its own state."""
    h = Harness()
    h.feed(login(0, "s1", user="u1"))
    tomb = [(key, None) for key, _ in h.changelog if orjson.loads(key)[0] == "s"]
    view = LiveView("acme", None, policy())
    for key, value in h.changelog:
        view.add(1, key, value)
    for key, value in tomb:  # a tombstone on another partition leaves partition 1's session
        view.add(2, key, value)

    assert [("s1", 1)] == [(s.session_id, s.partition) for s in view.listing().sessions]
