"""What one user or session accumulates from many records stays bounded: the role lists
its outputs carry, and the user record its changelog carries."""

from __future__ import annotations

from sessionwarden.contracts.base import MAX_ROLES
from sessionwarden.contracts.codec import decode_revocation_record, encode_dict
from sessionwarden.enforcer.engine.sessions import Session, User, encode_user_value
from tests.unit.enforcer.factories import login, role_change
from tests.unit.enforcer.harness import Harness

U1 = ("acme", "u1")


def test_grants_never_give_a_session_more_roles_than_its_records_may_carry() -> None:
    """A revocation naming more roles than the output contract allows is refused by strict
    decoders (gateways, listeners): the session's end would not be enforced downstream."""
    h = Harness()
    h.feed(login(0, "s1", roles=tuple(f"a{i}" for i in range(MAX_ROLES - 2))))
    h.feed(role_change(1, granted=("b1", "b2", "b3", "b4")))
    h.feed(role_change(2, removed=("a0",)))
    records = [
        decode_revocation_record(encode_dict(o.value))
        for o in h.outputs
        if o.topic == "revocations"
    ]

    assert ["revalidation", "revocation"] == [r.type for r in records]
    assert [["b1", "b2"], ["b1", "b2"]] == [
        r.roles_granted if r.type == "revalidation" else r.roles[-2:] for r in records
    ]
    sess = h.enforcer.state.sessions[("acme", "s1")]
    assert not isinstance(sess, Session)


def test_a_full_session_gains_nothing_and_is_not_revalidated() -> None:
    """No room left: the grant does not reach it (the session fails closed, without the role)."""
    h = Harness()
    h.feed(login(0, "s1", roles=tuple(f"a{i}" for i in range(MAX_ROLES))))
    h.feed(role_change(1, granted=("more",)))

    assert [] == [o for o in h.outputs if o.value["type"] == "revalidation"]
    sess = h.enforcer.state.sessions[("acme", "s1")]
    assert isinstance(sess, Session) and MAX_ROLES == len(sess.roles)


def test_a_users_record_keeps_only_the_roles_the_policy_knows() -> None:
    """Roles are only read for privilege levels and sensitivity, which only catalogued roles
    have: a producer inventing role names at every login must not grow the user's changelog
    record past the broker's message size (its transaction could then never commit)."""
    h = Harness()
    for j in range(50):
        invented = tuple(f"r{j}-{i}-" + "x" * 100 for i in range(MAX_ROLES - 1))
        h.feed(login(j * 0.01, f"s{j}", roles=("editor", *invented)))
    h.feed(role_change(3, granted=("admin", "invented")))
    user = h.enforcer.state.users[U1]
    restored = h.restored().state.users[U1]

    assert isinstance(user, User) and isinstance(restored, User)
    assert (frozenset({"editor", "admin"}),) * 2 == (user.roles, restored.roles)
    assert len(encode_user_value(user)) < 1000
