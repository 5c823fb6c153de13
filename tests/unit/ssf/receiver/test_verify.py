"""A SET is verified against its transmitter: each failure has its RFC 8935 code."""

from __future__ import annotations

import pytest

from sessionwarden.ssf import vocabulary as v
from sessionwarden.ssf.receiver.refusal import Refused, Unavailable
from sessionwarden.ssf.receiver.verify import Trust, rules_of, verify_set
from tests.unit.gate.tokens import sign
from tests.unit.ssf.receiver.sets import (
    AUDIENCE,
    NOW,
    RULES,
    claims,
    complex_subject,
    set_token,
    trust,
    unsigned,
)


def check(token: str, now: float = NOW, who: Trust | None = None) -> str:
    who = who or trust()
    rules = rules_of(who, RULES.iat_window_s, RULES.leeway_s, RULES.max_token_bytes)
    return verify_set(token, who, rules, now).jti


def refusal(token: str, now: float = NOW, who: Trust | None = None) -> str:
    with pytest.raises(Refused) as caught:
        check(token, now, who)
    return caught.value.code


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_set_signed_by_its_transmitters_key_is_verified(alg: str) -> None:
    """Both algorithms SSF transmitters use verify, and the event and subject come out."""
    who = trust()
    rules = rules_of(who, 600.0, 30.0, 65_536)
    event = verify_set(set_token(alg=alg), who, rules, NOW)
    assert ("j-1", v.SESSION_REVOKED) == (event.jti, event.event_type)
    assert complex_subject() == event.subject


def test_an_unsigned_set_is_an_invalid_request() -> None:
    """alg none is never accepted, whatever the claims say."""
    assert "invalid_request" == refusal(unsigned())


def test_an_hmac_set_is_an_invalid_request() -> None:
    assert "invalid_request" == refusal(set_token(alg="HS256"))


def test_a_wrongly_signed_set_is_an_invalid_key() -> None:
    """A signature over other claims (a token whose payload was swapped) does not verify."""
    head, _, signature = set_token().split(".")
    forged = set_token(claims(jti="j-2")).split(".")[1]
    assert "invalid_key" == refusal(f"{head}.{forged}.{signature}")


def test_a_set_naming_a_key_the_jwks_lacks_is_an_invalid_key() -> None:
    assert "invalid_key" == refusal(set_token(kid="elsewhere"))


def test_another_issuer_is_an_invalid_issuer() -> None:
    assert "invalid_issuer" == refusal(set_token(claims(iss="https://evil.example")))


def test_another_audience_is_an_invalid_audience() -> None:
    assert "invalid_audience" == refusal(set_token(claims(aud="https://other.example")))
    assert "j-1" == check(set_token(claims(aud=["https://other.example", AUDIENCE])))


def test_iat_must_lie_within_the_window() -> None:
    """Older than the window, or further ahead than the leeway, is refused; inside passes."""
    token = set_token()
    assert "j-1" == check(token, NOW + 600)
    assert "invalid_request" == refusal(token, NOW + 601)
    assert "j-1" == check(token, NOW - 30)
    assert "invalid_request" == refusal(token, NOW - 31)
    body = claims()
    del body["iat"]
    assert "invalid_request" == refusal(set_token(body))


def test_typ_must_be_secevent_jwt() -> None:
    """A signed JWT of another kind (an ID token) is not taken for a SET (RFC 8417 2.3)."""
    assert "invalid_request" == refusal(sign(claims(), "RS256", typ="JWT"))
    assert "j-1" == check(sign(claims(), "RS256", typ="application/secevent+jwt"))


def test_an_expired_set_is_refused() -> None:
    assert "invalid_request" == refusal(set_token(claims(exp=int(NOW) - 60)))


@pytest.mark.parametrize(
    "body",
    [
        claims(jti=""),
        {**claims(), "jti": 7},
        {**claims(), "events": {}},
        {**claims(), "events": {v.SESSION_REVOKED: {}, v.CREDENTIAL_CHANGE: {}}},
        {**claims(), "events": {v.SESSION_REVOKED: "revoked"}},
        claims(subject={"format": "opaque"}),
        claims(subject={"format": "complex", "planet": {"format": "opaque", "id": "x"}}),
    ],
)
def test_a_set_of_the_wrong_shape_is_an_invalid_request(body: dict[str, object]) -> None:
    assert "invalid_request" == refusal(set_token(body))


def test_a_subject_inside_the_event_is_read_when_there_is_no_sub_id() -> None:
    """Transmitters written to the drafts put the subject in the event's payload."""
    body = claims(payload={"subject": complex_subject(user="u-9")})
    del body["sub_id"]
    who = trust()
    event = verify_set(set_token(body), who, rules_of(who, 600.0, 30.0, 65_536), NOW)
    assert "u-9" == event.subject["user"]["id"]


def test_keys_that_cannot_be_loaded_are_unavailable_not_a_refusal() -> None:
    """Our outage must not make the transmitter drop the SET: it is asked to retry."""

    def down() -> bytes:
        raise OSError("connection refused")

    with pytest.raises(Unavailable):
        check(set_token(), who=trust(keys=down))
