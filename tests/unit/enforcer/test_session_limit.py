"""The live sessions of one user are bounded by the policy's ``max_sessions_per_user``: a
login beyond it ends the user's oldest live session (``session_limit``), so no single record
(a role change, a logout) fans out to more than that many sessions."""

from __future__ import annotations

from sessionwarden.contracts.codec import decode_audit_event, decode_revocation_record, encode_dict
from sessionwarden.enforcer.engine.sessions import Session, User
from sessionwarden.policy import parse_policy
from tests.unit.enforcer.factories import POLICY_TOML, login, role_change
from tests.unit.enforcer.harness import Harness

CAP = 3


def _capped(cap: int = CAP) -> Harness:
    return Harness(parse_policy(f"max_sessions_per_user = {cap}\n" + POLICY_TOML))


def _live(h: Harness, user: str = "u1") -> list[str]:
    return sorted(
        sid
        for (_, sid), sess in h.enforcer.state.sessions.items()
        if isinstance(sess, Session) and sess.user_id == user
    )


def test_a_login_beyond_the_cap_ends_the_users_oldest_live_session() -> None:
    """The new login stays; the oldest goes, at the new login's time, naming it as the cause."""
    h = _capped()
    h.feed(login(0, "s1"), login(1, "s2"), login(2, "s3"))
    fourth = login(3, "s4")
    h.feed(fourth)

    assert [("s1", "session_limit", 3.0)] == h.ended()
    assert fourth.event_id == h.revocations()[0]["cause_event_id"]
    assert ["s2", "s3", "s4"] == _live(h)
    assert 1 == h.enforcer.stats["session_limit"]


def test_the_oldest_is_chosen_by_login_time_not_by_read_order() -> None:
    """A login read late with an older time is the oldest: the outcome is the same in any
    read order (and after a restore, which does not keep the order sessions were read in)."""
    h = _capped()
    h.feed(login(5, "s1"), login(6, "s2"), login(7, "s3"))
    h.feed(login(2, "late"), now=8.0)

    assert [("late", "session_limit", 2.0)] == h.ended()
    assert ["s1", "s2", "s3"] == _live(h)


def test_an_oldest_session_past_its_deadline_ends_at_that_deadline() -> None:
    """A session idle past its deadline is over already: it ends as idle, not as the cap's."""
    h = _capped()
    h.feed(login(0, "s1"), login(90, "s2"), login(95, "s3"))
    h.feed(login(150, "s4"))  # s1's idle deadline (100 s) passed, not yet fired

    assert [("s1", "idle_timeout", 100.0)] == h.ended()
    assert ["s2", "s3", "s4"] == _live(h)


def test_a_replayed_login_ends_nothing() -> None:
    """A duplicate of a login at the cap is not a new session."""
    h = _capped()
    first = login(0, "s1")
    h.feed(first, login(1, "s2"), login(2, "s3"))
    h.feed(login(3, "s3"), first)

    assert [] == h.ended()


def test_other_users_and_tenants_do_not_count() -> None:
    """The cap is per user of a tenant."""
    h = _capped()
    h.feed(login(0, "s1"), login(1, "s2"), login(2, "s3"))
    h.feed(login(3, "t1", user="u2"), login(4, "t2", tenant="other"))

    assert [] == h.ended()


def test_a_login_ended_for_a_later_removal_does_not_push_another_out() -> None:
    """A login whose role was removed after it never counts against the cap."""
    h = _capped()
    h.feed(login(0, "s1"), login(1, "s2", roles=("editor",)), login(2, "s3", roles=("editor",)))
    h.feed(role_change(10, removed=("admin",)))
    h.feed(login(5, "s4", roles=("admin",)), now=11.0)

    assert [("s4", "permissions_revoked", 10.0)] == h.ended()
    assert ["s1", "s2", "s3"] == _live(h)


def test_a_role_change_reaches_at_most_the_cap() -> None:
    """However many logins a producer sends for one user, one role change ends at most the
    cap's worth of sessions: its work and its outputs are bounded."""
    h = _capped()
    h.feed(*[login(i, f"s{i}") for i in range(50)])
    h.outputs.clear()
    h.feed(role_change(100, removed=("viewer",)))

    assert CAP == len(h.ended())
    assert ["s47", "s48", "s49"] == sorted(sid for sid, _, _ in h.ended())
    assert 47 == h.enforcer.stats["session_limit"]


def test_the_cap_holds_after_a_restore() -> None:
    """Restore derives the user's live sessions; the next login beyond the cap still ends
    the oldest by login time."""
    h = _capped()
    h.feed(login(3, "s1"), login(1, "s2"), now=4.0)
    h.feed(login(2, "s3"), now=4.0)
    h.enforcer = h.restored()
    h.outputs.clear()
    h.feed(login(5, "s4"))

    assert [("s2", "session_limit", 5.0)] == h.ended()


def test_a_policy_that_sets_no_cap_still_bounds_a_users_sessions() -> None:
    """Without max_sessions_per_user the default cap applies: many logins of one user leave
    that many live sessions."""
    h = Harness()
    cap = h.enforcer.policy.max_sessions_per_user
    h.feed(*[login(i * 0.01, f"s{i}") for i in range(cap + 20)])

    assert cap == len(_live(h))
    assert 20 == h.enforcer.stats["session_limit"]


def test_a_session_limit_revocation_and_its_audit_record_meet_the_output_contract() -> None:
    """Gateways, the sink and the detectors decode these records strictly: the reason must be
    one the output schema names."""
    h = _capped(1)
    h.feed(login(0, "s1"), login(1, "s2"))
    revocations = [encode_dict(o.value) for o in h.outputs if o.topic == "revocations"]
    ended = [encode_dict(v) for v in h.audits("session_ended")]

    assert ["session_limit"] == [decode_revocation_record(r).reason for r in revocations]  # type: ignore[union-attr]
    assert ["session_limit"] == [decode_audit_event(a).reason for a in ended]  # type: ignore[union-attr]


def test_a_users_sessions_are_kept_oldest_first_in_any_read_order_and_after_restore() -> None:
    """The oldest is found at once (no scan of the user's sessions per login at the cap)."""
    h = _capped(10)
    h.feed(login(5, "b"), login(7, "c"), login(2, "z"), login(5, "a"), login(9, "d"), now=10.0)
    user = h.enforcer.state.users[("acme", "u1")]
    restored = h.restored().state.users[("acme", "u1")]

    expected = ["z", "a", "b", "c", "d"]
    assert isinstance(user, User) and isinstance(restored, User)
    assert (expected, expected) == (user.sessions, restored.sessions)
