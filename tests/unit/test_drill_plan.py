"""The drill's seeded plan: the same for the same seed, attempts dense around every deadline
and reaching past deadline + tolerance."""

from __future__ import annotations

from sessionwarden.audit.drill.plan import PlanOptions, idp_plan, make_plan


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    assert make_plan(PlanOptions(30, seed=3)) == make_plan(PlanOptions(30, seed=3))
    assert make_plan(PlanOptions(30, seed=3)) != make_plan(PlanOptions(30, seed=4))


def test_deadlines_follow_the_last_event() -> None:
    plans = make_plan(PlanOptions(200, seed=1, idle_s=3.0, logout_share=0.25))
    reasons = {p.reason for p in plans}
    assert reasons == {"idle_timeout", "logout"}
    logouts = sum(p.reason == "logout" for p in plans)
    assert 20 < logouts < 80
    for p in plans:
        last = p.activity[-1] if p.activity else p.start
        if p.reason == "logout":
            assert p.logout is not None and p.deadline == p.logout > last
        else:
            assert p.logout is None and p.deadline == last + 3.0


def test_attempts_dense_around_the_deadline_and_past_the_tolerance() -> None:
    options = PlanOptions(50, seed=9, tolerance_s=1.0)
    for p in make_plan(options):
        gaps = [b - a for a, b in zip(p.attempts, p.attempts[1:], strict=False)]
        dense = [g for a, g in zip(p.attempts, gaps, strict=False) if a >= p.deadline - 0.5]
        assert dense and all(0.05 <= g <= 0.1 for g in dense)
        assert max(gaps) <= options.sparse_s + 1e-9
        assert p.attempts[0] > p.start
        assert p.attempts[-1] > p.deadline + options.tolerance_s
        assert any(t < p.deadline for t in p.attempts)


def test_the_idp_plan_is_seeded_apart_with_labels_and_users_of_its_own() -> None:
    """The Keycloak sessions never share a label or a user with the other layers' sessions."""
    options = PlanOptions(5, seed=3)
    idp = idp_plan(options, 3)
    assert idp == idp_plan(options, 3)
    assert ["k0001", "k0002", "k0003"] == [p.label for p in idp]
    assert ["drill-kc-1", "drill-kc-2", "drill-kc-3"] == [p.user for p in idp]
    main = make_plan(options)
    assert not {p.user for p in idp} & {p.user for p in main}
    assert [p.deadline for p in idp] == [p.deadline for p in make_plan(PlanOptions(3, seed=4))]
