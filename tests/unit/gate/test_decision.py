"""The gate's decision: request headers -> identity -> verdict, with a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sessionwarden.config.settings import load_settings
from sessionwarden.errors import ConfigError
from sessionwarden.gate.decision import REASONS, Gate, GateRules, Source, Verdict
from sessionwarden.gate.jwt import Jwks, JwtRules, verify
from sessionwarden.gate.service import rules_of, verifier_of
from tests.unit.gate.tokens import jwks, sign
from tests.unit.sdk.fakes import Clock, revocation
from tests.unit.sdk.test_listener import BUDGET, Rig

NOW = 1_800_000_000.0
COOKIE = Source("cookie", "sw")
TENANT = Source("header", "x-tenant")


class View:
    """A revocation set that is healthy unless told otherwise."""

    def __init__(self, *revoked: tuple[str, str], healthy: bool = True, closed: bool = True):
        self.revoked = set(revoked)
        self.is_healthy = healthy
        self.fail_closed = closed

    def healthy(self) -> bool:
        return self.is_healthy

    def is_revoked(self, tenant: str, session_id: str) -> bool:
        if self.fail_closed and not self.is_healthy:
            return True
        return (tenant, session_id) in self.revoked


def request(**headers: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]


def decide(gate: Gate, **headers: str) -> Verdict:
    return gate.decide(request(**headers), NOW)


def cookie_gate(view: Any, **rules: Any) -> Gate:
    return Gate(GateRules(COOKIE, TENANT, **rules), view)


def test_a_session_not_revoked_is_allowed_and_named_back_to_the_gateway() -> None:
    """200 with the tenant; the gateway may pass it to the upstream."""
    verdict = decide(cookie_gate(View()), cookie="sw=s-1", x_tenant="acme")
    assert (200, "allowed", "acme") == (verdict.status, verdict.reason, verdict.tenant)


def test_a_revoked_session_is_refused_with_401() -> None:
    verdict = decide(cookie_gate(View(("acme", "s-1"))), cookie="sw=s-1", x_tenant="acme")
    assert (401, "revoked") == verdict[:2]


def test_the_same_session_id_in_another_tenant_is_another_session() -> None:
    gate = cookie_gate(View(("acme", "s-1")))
    assert "allowed" == decide(gate, cookie="sw=s-1", x_tenant="globex").reason


def test_a_tenant_the_gate_does_not_admit_is_refused_with_403() -> None:
    """A session of another tenant never reaches a tenant's routes, revoked or not."""
    gate = cookie_gate(View(), tenants=frozenset({"acme"}))
    assert (403, "wrong_tenant") == decide(gate, cookie="sw=s-1", x_tenant="globex")[:2]
    assert "allowed" == decide(gate, cookie="sw=s-1", x_tenant="acme").reason


def test_no_session_is_refused_unless_anonymous_requests_are_allowed() -> None:
    assert (401, "no_session") == decide(cookie_gate(View()), x_tenant="acme")[:2]
    anonymous = cookie_gate(View(), allow_anonymous=True)
    assert (200, "anonymous") == decide(anonymous, x_tenant="acme")[:2]


def test_a_session_without_a_tenant_is_refused() -> None:
    assert (401, "no_tenant") == decide(cookie_gate(View()), cookie="sw=s-1")[:2]


@pytest.mark.parametrize(
    "headers",
    [
        {"cookie": "sw=s-1; sw=s-2"},  # named twice
        {"cookie": "sw=s-1; SW=s-2"},  # in another case
        {"cookie": "sw=s 1"},
        {"cookie": "sw=s%2d1"},
        {"cookie": 'sw="s\\"1"'},
        {"cookie": "sw="},
        {"cookie": "sw=" + "a" * 300},
    ],
)
def test_an_ambiguous_or_malformed_session_is_refused(headers: dict[str, str]) -> None:
    """Two readers could take such a request for two sessions: it is refused, never guessed."""
    assert (401, "invalid_request") == decide(cookie_gate(View()), x_tenant="acme", **headers)[:2]


def test_oversized_identity_headers_are_refused_before_they_are_parsed() -> None:
    gate = cookie_gate(View(), max_header_bytes=1024)
    verdict = decide(gate, cookie="sw=s-1; junk=" + "x" * 2000, x_tenant="acme")
    assert (401, "too_large") == verdict[:2]
    assert "allowed" == decide(gate, cookie="sw=s-1", x_tenant="acme", x_other="y" * 2000).reason


def test_a_fail_closed_gate_past_its_staleness_budget_refuses_with_503() -> None:
    """Fail-closed by default: a listener that lost the broker vouches for nobody."""
    rig = Rig()
    listener = rig.start()
    rig.add(revocation("s-revoked"))
    rig.steps()
    gate = cookie_gate(listener)
    assert "allowed" == decide(gate, cookie="sw=s-1", x_tenant="acme").reason
    assert "revoked" == decide(gate, cookie="sw=s-revoked", x_tenant="acme").reason
    rig.consumer.down = True
    rig.steps(int(BUDGET / 2), seconds=1.0)
    assert "allowed" == decide(gate, cookie="sw=s-1", x_tenant="acme").reason, "within budget"
    rig.steps(int(BUDGET / 2) + 2, seconds=1.0)
    assert (503, "stale") == decide(gate, cookie="sw=s-1", x_tenant="acme")[:2]
    rig.consumer.down = False
    rig.steps(2, seconds=1.0)
    assert "allowed" == decide(gate, cookie="sw=s-1", x_tenant="acme").reason, "caught up"


def test_a_session_ended_on_an_identity_signal_is_refused_through_the_listener() -> None:
    """A revocation of reason ``signal`` read from the topic refuses the session with 401."""
    rig = Rig()
    listener = rig.start()
    rig.add(revocation("s-signal", reason="signal"))
    rig.steps()
    gate = cookie_gate(listener)
    assert (401, "revoked") == decide(gate, cookie="sw=s-signal", x_tenant="acme")[:2]
    assert "allowed" == decide(gate, cookie="sw=s-1", x_tenant="acme").reason


def test_a_fail_open_gate_keeps_answering_from_the_set_it_has() -> None:
    gate = cookie_gate(View(("acme", "s-2"), healthy=False, closed=False))
    assert "allowed" == decide(gate, cookie="sw=s-1", x_tenant="acme").reason
    assert "revoked" == decide(gate, cookie="sw=s-2", x_tenant="acme").reason


BEARER = Source("header", "authorization")


def jwt_gate(view: Any, token: Source = BEARER) -> Gate:
    store = Jwks(jwks, 300, Clock(0.0), 10)
    rules = JwtRules(frozenset({"RS256", "ES256"}), issuer="https://idp", audience="gw")
    gate_rules = GateRules(
        Source("jwt", "sid"), Source("jwt", "tid"), Source("jwt", "sub"), token,
        tenants=frozenset({"acme"}),
    )  # fmt: skip
    return Gate(gate_rules, view, lambda raw, now: verify(raw, store, rules, now))


CLAIMS = {"iss": "https://idp", "aud": "gw", "exp": NOW + 60, "sid": "s-1", "tid": "acme",
          "sub": "alice"}  # fmt: skip


def test_tenant_session_and_user_come_from_a_verified_jwt() -> None:
    verdict = decide(jwt_gate(View()), authorization=f"Bearer {sign(CLAIMS, 'ES256')}")
    assert Verdict(200, "allowed", "acme", "alice", "s-1") == verdict


def test_a_revoked_session_in_a_valid_jwt_is_refused() -> None:
    gate = jwt_gate(View(("acme", "s-1")))
    assert "revoked" == decide(gate, authorization=f"Bearer {sign(CLAIMS)}").reason


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({**CLAIMS, "exp": NOW - 60}, "token_expired"),
        ({**CLAIMS, "iss": "https://evil"}, "wrong_issuer"),
        ({**CLAIMS, "tid": "globex"}, "wrong_tenant"),
        ({**CLAIMS, "sid": 12}, "invalid_request"),
        ({**CLAIMS, "sid": "has space"}, "invalid_request"),
        ({k: v for k, v in CLAIMS.items() if k != "sid"}, "no_session"),
    ],
)
def test_a_jwt_that_fails_a_check_is_refused_with_its_reason(
    claims: dict[str, Any], reason: str
) -> None:
    verdict = decide(jwt_gate(View()), authorization=f"Bearer {sign(claims)}")
    assert (REASONS[reason], reason) == verdict[:2]


@pytest.mark.parametrize(
    "value", ["Basic abc", "Bearer", "Bearer a.b", "bearer  a.b.c", "Bearer a.b.c extra"]
)
def test_an_authorization_header_that_is_not_one_bearer_jwt_is_refused(value: str) -> None:
    assert "invalid_request" == decide(jwt_gate(View()), authorization=value).reason


def test_a_jwt_may_come_from_a_cookie() -> None:
    gate = jwt_gate(View(), token=Source("cookie", "id_token"))
    assert "allowed" == decide(gate, cookie=f"id_token={sign(CLAIMS)}").reason


def test_every_reason_has_a_status_a_gateway_understands() -> None:
    """nginx auth_request: 2xx allows, 401/403 refuse; Envoy and Traefik pass 503 on."""
    assert {200, 401, 403, 503} == set(REASONS.values())


def test_the_settings_describe_the_gate() -> None:
    settings = load_settings(gate_session_from="header:x-session", gate_tenant_from="constant:acme",
                             gate_tenants="acme, globex")  # fmt: skip
    rules = rules_of(settings.gate)
    assert (Source("header", "x-session"), Source("constant", "acme"), {"acme", "globex"}) == (
        rules.session,
        rules.tenant,
        rules.tenants,
    )
    gate = Gate(rules, View())
    assert "acme" == decide(gate, x_session="s-1").tenant


def test_a_jwt_cookie_named_twice_is_refused() -> None:
    gate = jwt_gate(View(), token=Source("cookie", "id_token"))
    token = sign(CLAIMS)
    assert "invalid_request" == decide(gate, cookie=f"id_token={token}; ID_TOKEN={token}").reason


def test_a_jwks_file_that_is_not_there_stops_the_gate_at_start(tmp_path: Path) -> None:
    """A typo in the key file's path must not become a gate that answers 503 forever."""
    settings = load_settings(gate_session_from="jwt:sid", gate_jwks_file=tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="gate_jwks_file"):
        verifier_of(settings.gate)
    (tmp_path / "jwks.json").write_bytes(jwks())
    found = verifier_of(load_settings(gate_session_from="jwt:sid",
                                      gate_jwks_file=tmp_path / "jwks.json").gate)  # fmt: skip
    assert found is not None and "s-1" == found(sign(CLAIMS), NOW)["sid"]
