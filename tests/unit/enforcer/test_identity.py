"""Identity is (tenant, user) and (tenant, session); a session belongs to its user."""

from __future__ import annotations

import orjson
from pydantic import TypeAdapter

from sessionwarden.contracts.outputs import AuditEvent, RevocationRecord
from sessionwarden.enforcer.engine.core import PartitionEnforcer
from sessionwarden.enforcer.engine.partition import TAGGED_TENANTS, PartitionState
from sessionwarden.enforcer.engine.sessions import Session, changelog_key, parse_changelog_key
from tests.unit.enforcer.factories import T0, activity, login, logout, policy, role_change
from tests.unit.enforcer.harness import Harness

AUDIT: TypeAdapter[AuditEvent] = TypeAdapter(AuditEvent)
REVOCATION: TypeAdapter[RevocationRecord] = TypeAdapter(RevocationRecord)


def test_a_grant_in_one_tenant_never_reaches_another_tenants_session() -> None:
    """User `admin` of tenant b gaining a role must not upgrade user `admin` of tenant a."""
    h = Harness()
    h.feed(
        login(0, "sa", user="admin", roles=("viewer",), tenant="a"),
        login(0, "sb", user="admin", roles=("editor",), tenant="b"),
    )
    h.feed(role_change(5, user="admin", granted=("admin",), tenant="b"))
    revals = [o.value for o in h.outputs if o.value["type"] == "revalidation"]
    assert [("b", "sb", ["editor", "admin"])] == [
        (r["tenant"], r["session_id"], r["roles"]) for r in revals
    ]
    assert 1 == h.audits("role_changed")[0]["live_sessions"]


def test_a_removal_in_one_tenant_never_ends_another_tenants_session() -> None:
    """Removing `editor` from b's user leaves the same user id of tenant a alone."""
    h = Harness()
    h.feed(
        login(0, "sa", user="bob", roles=("editor",), tenant="a"),
        login(0, "sb", user="bob", roles=("editor",), tenant="b"),
    )
    h.feed(role_change(5, user="bob", removed=("editor",), tenant="b"))
    assert [("sb", "permissions_revoked", 5.0)] == h.ended()


def test_the_same_session_id_in_two_tenants_is_two_sessions() -> None:
    """Tenants pick their own session ids: a clash is not the same session."""
    h = Harness()
    h.feed(login(0, "s1", tenant="a"), login(0, "s1", tenant="b"))
    assert 2 == len(h.audits("session_started"))
    h.feed(logout(10, "s1", tenant="a"))
    h.tick(100)
    assert [("a", "logout", 10.0), ("b", "idle_timeout", 100.0)] == [
        (r["tenant"], r["reason"], r["effective_at"].timestamp() - T0) for r in h.revocations()
    ]
    # subscribers de-duplicate on these ids: two tenants' records must never share one
    assert 2 == len({a["event_id"] for a in h.audits("session_started")})
    h2 = Harness()
    h2.feed(login(0, "s1", tenant="a"), login(0, "s1", tenant="b"))
    h2.tick(100)
    assert 2 == len({r["revocation_id"] for r in h2.revocations()})


def test_activity_on_another_users_session_keeps_nothing_alive() -> None:
    """Mallory's requests carrying alice's session id must not extend alice's idle deadline."""
    h = Harness()
    h.feed(login(0, "s-alice", user="alice"))
    h.feed(activity(50, "s-alice", user="mallory"), activity(90, "s-alice", user="mallory"))
    h.tick(100)
    assert [("s-alice", "idle_timeout", 100.0)] == h.ended()
    foreign = h.audits("foreign_session_event")
    assert [("mallory", "alice", "activity")] * 2 == [
        (f["user_id"], f["owner_user_id"], f["event_type"]) for f in foreign
    ]
    assert 2 == h.enforcer.stats["foreign_session_event"]


def test_logout_by_another_user_does_not_end_the_session() -> None:
    """Mallory's logout carrying alice's session id changes nothing and is audited."""
    h = Harness()
    h.feed(login(0, "s-alice", user="alice"))
    h.feed(logout(10, "s-alice", user="mallory"))
    assert [] == h.ended()
    assert ["logout"] == [f["event_type"] for f in h.audits("foreign_session_event")]
    h.tick(100)
    assert [("s-alice", "idle_timeout", 100.0)] == h.ended()


def test_login_reusing_another_users_session_id_changes_nothing() -> None:
    """A login claiming a live session of someone else neither starts nor alters it."""
    h = Harness()
    h.feed(login(0, "s-alice", user="alice", roles=("viewer",)))
    h.feed(login(5, "s-alice", user="mallory", roles=("admin",)))
    assert 1 == len(h.audits("session_started"))
    assert [("mallory", "alice", "login")] == [
        (f["user_id"], f["owner_user_id"], f["event_type"])
        for f in h.audits("foreign_session_event")
    ]


def test_revocation_key_and_changelog_keys_carry_the_tenant() -> None:
    """Compaction must keep two tenants' records for the same session id apart."""
    h = Harness()
    h.feed(login(0, "s1", tenant="a"), login(0, "s1", tenant="b"))
    h.feed(role_change(1, user="u1", granted=("editor",), tenant="a"))
    h.tick(100)
    keys = {o.key for o in h.outputs if o.topic == "revocations"}
    assert {'["a","s1"]', '["b","s1"]'} == keys
    logged = {k for k, _ in h.changelog}
    assert {'["s","a","s1"]', '["s","b","s1"]', '["u","a","u1"]'} == logged
    for key in keys:
        assert isinstance(orjson.loads(key), list)


def test_restore_keeps_tenants_apart() -> None:
    """A new owner of the partition rebuilds both tenants' sessions with the same id."""
    h = Harness()
    h.feed(login(0, "s1", tenant="a"), login(0, "s1", tenant="b"))
    h.feed(activity(60, "s1", tenant="b"))
    fresh = PartitionEnforcer(policy())
    for key, value in h.changelog:
        fresh.state.restore(key, value)
    fresh.state.finish_restore()
    fresh.state.begin()
    fresh.fire_due(T0 + 160, T0 + 160)
    fresh.state.commit()
    ended = sorted(
        (o.value["tenant"], o.value["effective_at"].timestamp() - T0)
        for o in fresh.state.take_outputs()
        if o.value["type"] == "revocation"
    )
    assert [("a", 100.0), ("b", 160.0)] == ended


def test_new_audit_records_match_their_schemas() -> None:
    """The foreign-owner, login-after-logout and producer-delay records meet their contract."""
    h = Harness()
    h.feed(login(0, "s1", user="alice"), activity(1, "s1", user="mallory"))
    h.feed(logout(2, "s2"), now=2)
    h.feed(login(1, "s2"), now=3)
    h.tick(100)
    h.feed(activity(99, "s1", user="alice"), now=104)
    seen = set()
    for emit in h.outputs:
        adapter = AUDIT if emit.topic == "audit" else REVOCATION
        seen.add(adapter.validate_python(emit.value).type)
    assert {"foreign_session_event", "login_after_logout", "activity_after_revocation"} <= seen


def test_a_changelog_of_the_older_key_form_is_restored_and_rewritten() -> None:
    """An upgrade reads `s|<id>` records (their values carry the tenant) and moves them to
    tenant-scoped keys in its first batch, tombstoning the old key."""
    old_row = ["S", "s1", "u1", "acme", "customer", "low", T0, T0, T0, 100.0, T0 + 1000.0]
    old_value = orjson.dumps([*old_row, ["viewer"], ["viewer:read"]])
    fresh = PartitionEnforcer(policy())
    fresh.state.restore("s|s1", old_value)
    fresh.state.restore("s|gone", orjson.dumps(["E", "gone", "u1", "acme", "logout", T0, T0 + 9]))
    fresh.state.restore("s|gone", None)
    fresh.state.finish_restore()
    fresh.state.begin()
    changes = dict(fresh.state.changelog())
    assert {"s|s1": None, "s|gone": None} == {k: v for k, v in changes.items() if k[0] == "s"}
    assert changes['["s","acme","s1"]'] is not None
    fresh.fire_due(T0 + 100, T0 + 100)
    fresh.state.commit()
    assert [("acme", "s1")] == [
        (o.value["tenant"], o.value["session_id"])
        for o in fresh.state.take_outputs()
        if o.value["type"] == "revocation"
    ]
    fresh.state.begin()
    assert [] == [k for k, _ in fresh.state.changelog() if not k.startswith("[")]
    fresh.state.commit()


def test_a_foreign_event_leaves_the_owners_record_untouched() -> None:
    """Not even the owner's changelog record changes: a flood cannot rewrite a victim's state."""
    h = Harness()
    h.feed(login(0, "s-alice", user="alice"))
    before = len(h.changelog)
    h.feed(activity(5, "s-alice", user="mallory"), logout(6, "s-alice", user="mallory"))
    assert before == len(h.changelog)


def test_changelog_keys_are_json_whatever_the_ids_hold() -> None:
    """Quotes, backslashes, separators and control characters in a tenant or id stay apart."""
    for tenant, ident in [
        ("acme", "s-1"),
        ('a"b', "s|1"),
        ("a\\\\", '"]'),
        ("t\n", "\x00"),
        ("é", "ü-1"),
        ("a|b", "c"),
    ]:
        raw = changelog_key("s", (tenant, ident))
        assert orjson.dumps(["s", tenant, ident]).decode() == raw
        assert ("s", (tenant, ident)) == parse_changelog_key(raw)


def test_restore_applies_the_last_record_of_each_key_in_changelog_order() -> None:
    """Restore keeps one raw record per key and decodes it at the end; the result must be
    what applying every record in changelog order gives, older key forms included."""

    def row(sid: str, last: float) -> bytes:
        base = ["S", sid, "u1", "acme", "customer", "low", T0, T0 + last, T0, 100.0, T0 + 1000]
        return orjson.dumps([*base, ["viewer"], ["viewer:read"]])

    fresh = PartitionEnforcer(policy())
    fresh.state.restore('["s","acme","s1"]', row("s1", 10))
    fresh.state.restore("s|s1", row("s1", 20))  # the older form, later in the log: it wins
    fresh.state.restore('["s","acme","s2"]', row("s2", 1))
    fresh.state.restore('["s","acme","s2"]', None)
    fresh.state.restore('["s","acme","s2"]', row("s2", 30))
    fresh.state.restore('["s","acme","s3"]', row("s3", 5))
    fresh.state.restore('["s","acme","s3"]', None)
    fresh.state.finish_restore()
    restored = {
        key[1]: sess.last_activity - T0
        for key, sess in fresh.state.sessions.items()
        if isinstance(sess, Session)
    }
    assert {"s1": 20.0, "s2": 30.0} == restored


def test_restored_records_decoded_in_slices_give_the_same_state() -> None:
    """The shell decodes restored records a slice per loop turn; slicing changes nothing."""
    h = Harness()
    h.feed(*(login(0, f"s{i}", user=f"u{i % 3}") for i in range(7)))
    h.feed(activity(5, "s1", user="u1"), logout(6, "s2", user="u2"))
    h.feed(role_change(7, user="u0", granted=("editor",)))
    whole, sliced = PartitionEnforcer(policy()), PartitionEnforcer(policy())
    for fresh in (whole, sliced):
        for key, value in h.changelog:
            fresh.state.restore(key, value)
    turns = 0
    while not sliced.state.decode_restored(2):
        turns += 1
    assert turns >= 3
    whole.state.finish_restore()
    sliced.state.finish_restore()
    rows = [
        {k: (type(s).__name__, s.to_row()) for k, s in e.state.sessions.items()}
        for e in (whole, sliced)
    ]
    assert rows[0] == rows[1] and len(rows[0]) == 7
    assert {k: u.to_row() for k, u in whole.state.user_items()} == {
        k: u.to_row() for k, u in sliced.state.user_items()
    }


def test_the_duplicate_filter_tells_tenants_apart_past_its_tagged_tenants() -> None:
    """Event ids are remembered per tenant (one int each for the first TAGGED_TENANTS
    tenants, a (tenant, id) pair beyond): the same id of another tenant is never a duplicate."""
    state = PartitionState(policy())
    tenants = [f"t{i}" for i in range(TAGGED_TENANTS + 2)]
    assert all(state.first_seen(t, 7) for t in tenants)
    assert not any(state.first_seen(t, 7) for t in tenants)
    assert state.first_seen("t0", 8) and state.first_seen(tenants[-1], 8)
