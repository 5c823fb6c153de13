"""Users that are their only session: no User object until a second session, a role change or
the session's end needs one, with the same decisions and changelog as a User of their own."""

from __future__ import annotations

from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.sessions import Session, User
from tests.unit.enforcer.factories import T0, activity, login, logout, policy, role_change
from tests.unit.enforcer.harness import Harness

U1 = ("acme", "u1")
MAX_ABSOLUTE = policy().max_absolute  # a user outlives its last session by this


def _users(e: PartitionEnforcer) -> dict[tuple[str, str], list[object]]:
    return {k: [*u.to_row(), u.sessions] for k, u in e.state.user_items()}


def test_a_user_with_one_session_and_no_role_change_is_that_session() -> None:
    """Most users hold one session: a User of their own for each would cost ~200 bytes."""
    h = Harness()
    h.feed(login(0, "s1", roles=("viewer",)))
    state = h.enforcer.state
    assert state.sessions[("acme", "s1")] is state.users[U1]
    assert [(U1, ["u1", "acme", ["viewer"], [], T0 + 1000 + MAX_ABSOLUTE, []], ["s1"])] == [
        (k, u.to_row(), u.sessions) for k, u in state.user_items()
    ]
    assert [] == [k for k, _ in h.changelog if k.startswith('["u"')]


def test_a_second_session_gives_the_user_an_object_with_both() -> None:
    """Role changes must reach every live session of the user, the first one included."""
    h = Harness()
    h.feed(login(0, "s1", roles=("viewer",)))
    h.feed(login(5, "s2", roles=("editor",)))
    user = h.enforcer.state.users[U1]
    assert isinstance(user, User)
    assert (["s1", "s2"], frozenset({"viewer", "editor"})) == (user.sessions, user.roles)
    h.feed(role_change(10, removed=("viewer",)))
    assert [("s1", "permissions_revoked", 10.0)] == h.ended()


def test_a_role_change_revokes_the_session_a_user_is() -> None:
    """The user kept as its session must still lose that session on a removal it holds."""
    h = Harness()
    h.feed(login(0, "s1", roles=("editor",)))
    h.feed(role_change(10, removed=("editor",), granted=("viewer",)))
    assert [("s1", "permissions_revoked", 10.0)] == h.ended()
    user = h.enforcer.state.users[U1]
    assert isinstance(user, User) and [] == user.sessions
    assert 1 == len([k for k, v in h.changelog if k == '["u","acme","u1"]' and v is not None])


def test_a_grant_revalidates_the_session_a_user_is() -> None:
    """A grant reaches the session through the User made for it, and is kept by it."""
    h = Harness()
    h.feed(login(0, "s1", roles=("viewer",)))
    h.feed(role_change(10, granted=("editor",)))
    revalidations = [o.value for o in h.outputs if o.value["type"] == "revalidation"]
    assert [["editor"]] == [r["roles_granted"] for r in revalidations]
    assert ("viewer", "editor") == h.enforcer.state.sessions[("acme", "s1")].roles  # type: ignore[union-attr]


def test_the_user_of_an_ended_session_is_kept_until_its_forget_time() -> None:
    """As before: the user outlives its last session by the longest absolute timeout."""
    h = Harness()
    h.feed(login(0, "s1"))
    h.feed(logout(50, "s1"))
    user = h.enforcer.state.users[U1]
    assert isinstance(user, User)
    assert ([], T0 + 1000 + MAX_ABSOLUTE) == (user.sessions, user.forget_at)
    e = h.enforcer
    e.state.begin()
    assert 1 == e.state.forget_expired(T0 + 1000 + MAX_ABSOLUTE)  # the user; its marker stays
    e.state.commit()
    assert U1 not in e.state.users


def test_an_abort_puts_back_the_user_that_was_its_session() -> None:
    """A batch that made the user an object (second login, role change) and aborted must leave
    the user as it was: its session, with no forget entry of its own."""
    h = Harness()
    h.feed(login(0, "s1", roles=("editor",)))
    sess = h.enforcer.state.sessions[("acme", "s1")]
    before = _users(h.enforcer)
    e = h.enforcer
    e.state.begin()
    e.apply(login(5, "s2"), T0 + 5)
    e.apply(role_change(6, removed=("editor",)), T0 + 6)
    assert before != _users(e)
    e.state.abort()
    assert sess is e.state.users[U1] and before == _users(e)
    h.feed(activity(20, "s1"))
    h.tick(120)
    assert [("s1", "idle_timeout", 120.0)] == h.ended()


def test_restore_keeps_single_session_users_as_their_session() -> None:
    """Restore derives users from live sessions: the same users, in the same compact form."""
    h = Harness()
    h.feed(login(0, "s1"), login(0, "s2", user="u2"), login(1, "s3", user="u2"))
    h.feed(login(2, "s4", user="u3"), role_change(3, user="u3", granted=("editor",)))
    fresh = h.restored()
    assert _users(h.enforcer) == _users(fresh)
    assert isinstance(fresh.state.users[U1], Session)
    assert isinstance(fresh.state.users[("acme", "u2")], User)
    assert isinstance(fresh.state.users[("acme", "u3")], User)


def test_restored_sessions_share_their_key_and_values_as_live_ones_do() -> None:
    """A restored session should cost what a live one does: one key tuple (its dict key's),
    the interned tenant, strings and role tuples, and one float for equal times."""
    h = Harness()
    h.feed(login(0, "s1", roles=("editor",)), login(0, "s2", user="u2", roles=("editor",)))
    fresh = h.restored()
    sessions = fresh.state.sessions
    a, b = (sessions[("acme", sid)] for sid in ("s1", "s2"))
    assert isinstance(a, Session) and isinstance(b, Session)
    dict_keys = {key: key for key in sessions}
    assert dict_keys[a.key] is a.key and dict_keys[b.key] is b.key
    assert a.key[0] is b.key[0] and a.user_type is b.user_type and a.risk_profile is b.risk_profile
    assert a.roles is b.roles and a.permissions is b.permissions
    assert a.last_activity is a.login_at and a.auth_time is a.login_at
    live = h.enforcer.state.sessions
    assert [live[k].to_row() for k in (a.key, b.key)] == [a.to_row(), b.to_row()]
