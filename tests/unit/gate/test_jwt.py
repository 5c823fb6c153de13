"""The gate's JWT verification: signatures against a JWKS, claims against a fake clock."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from sessionwarden.gate.decision import TokenRefused
from sessionwarden.gate.jwt import Jwks, JwtRules, verify
from tests.unit.gate.tokens import b64, jwks, sign
from tests.unit.sdk.fakes import Clock

NOW = 1_800_000_000.0
RULES = JwtRules(frozenset({"RS256", "ES256"}), issuer="https://idp", audience="gw", leeway_s=30)
CLAIMS = {"iss": "https://idp", "aud": ["gw", "other"], "exp": NOW + 60, "sid": "s-1"}


def keys(doc: bytes | None = None, clock: Clock | None = None) -> Jwks:
    body = jwks() if doc is None else doc
    return Jwks(lambda: body, 300.0, clock or Clock(0.0), 10.0)


def refusal(
    token: str, now: float = NOW, rules: JwtRules = RULES, store: Jwks | None = None
) -> str:
    with pytest.raises(TokenRefused) as caught:
        verify(token, store or keys(), rules, now)
    return caught.value.reason


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_token_signed_by_a_key_of_the_jwks_is_accepted(alg: str) -> None:
    """Both signature algorithms the issue names verify against their JWK."""
    assert "s-1" == verify(sign(CLAIMS, alg), keys(), RULES, NOW)["sid"]


def test_a_token_past_exp_plus_leeway_is_expired() -> None:
    """exp is checked against the injected clock, with the configured leeway."""
    token = sign(CLAIMS)
    assert "s-1" == verify(token, keys(), RULES, NOW + 60 + 29)["sid"]
    assert "token_expired" == refusal(token, NOW + 60 + 30)


def test_a_token_before_nbf_is_not_yet_valid() -> None:
    token = sign({**CLAIMS, "nbf": NOW + 100})
    assert "token_not_yet_valid" == refusal(token)
    assert "s-1" == verify(token, keys(), RULES, NOW + 71)["sid"]


def test_issuer_and_audience_are_checked() -> None:
    assert "wrong_issuer" == refusal(sign({**CLAIMS, "iss": "https://evil"}))
    assert "wrong_audience" == refusal(sign({**CLAIMS, "aud": "other"}))
    assert "s-1" == verify(sign({**CLAIMS, "aud": "gw"}), keys(), RULES, NOW)["sid"]


def test_a_token_without_exp_is_refused() -> None:
    """A token that never expires is not a session credential."""
    assert "token_invalid" == refusal(sign({"iss": "https://idp", "aud": "gw", "sid": "s"}))


@pytest.mark.parametrize(
    "make",
    [
        lambda: sign(CLAIMS)[:-4] + "AAAA",  # signature altered
        lambda: sign(CLAIMS).rsplit(".", 1)[0] + "." + sign(CLAIMS, "ES256").rsplit(".", 1)[1],
        lambda: b64(b'{"alg":"none"}') + "." + b64(b'{"sid":"s"}') + ".",  # alg none
        lambda: sign(CLAIMS, "HS256", kid="r1"),  # an HMAC over a public key
        lambda: sign(CLAIMS, crit=["x"]),
        lambda: "a.b",
        lambda: "a.b.c.d",
        lambda: "!!!.@@@.###",
        lambda: b64(b"[1]") + "." + b64(b"{}") + ".AAAA",  # header not an object
        lambda: sign(CLAIMS) + "=",
        lambda: "x" * 9000,
    ],
)
def test_malformed_or_forged_tokens_are_invalid(make) -> None:  # type: ignore[no-untyped-def]
    """Strict parsing: every one of these is refused, none raises anything else."""
    assert refusal(make()) in ("token_invalid", "unknown_key")


class Rotating:
    """A JWKS endpoint whose document the test replaces, counting the fetches."""

    def __init__(self, doc: bytes) -> None:
        self.doc, self.fetches = doc, 0

    def __call__(self) -> bytes:
        self.fetches += 1
        return self.doc


def test_a_token_naming_an_unknown_key_makes_the_jwks_fetch_again_at_most_every_10_s() -> None:
    """A rotated key is picked up without waiting for the cache to expire; a flood of made-up
    key ids is not a flood of fetches."""
    source, clock = Rotating(jwks(rsa_kid="old")), Clock(0.0)
    store = Jwks(source, 300, clock, 10)
    assert "unknown_key" == refusal(sign(CLAIMS), store=store)
    source.doc = jwks(rsa_kid="r1")  # the issuer rotates its key
    for _ in range(50):
        assert "unknown_key" == refusal(sign(CLAIMS, kid="made-up"), store=store)
    assert 1 == source.fetches
    clock.advance(10)
    assert "s-1" == verify(sign(CLAIMS), store, RULES, NOW)["sid"], "fetched again for the kid"
    assert 2 == source.fetches


def test_without_any_keys_yet_the_jwks_is_tried_again_every_second() -> None:
    """A first fetch that failed (the issuer slow or down at start) leaves nothing to verify
    with: waiting the 10 s meant for made-up key ids would refuse every token that long."""
    clock = Clock(0.0)
    answers = [b"not json"]
    store = Jwks(lambda: answers[-1], 300, clock, 10)
    assert "keys_unavailable" == refusal(sign(CLAIMS), store=store)
    answers.append(jwks())
    clock.advance(0.5)
    assert "keys_unavailable" == refusal(sign(CLAIMS), store=store), "at most once a second"
    clock.advance(0.5)
    assert "s-1" == verify(sign(CLAIMS), store, RULES, NOW)["sid"]


def test_a_fetch_that_took_long_is_not_started_again_at_once() -> None:
    """The wait between tries counted from the start of a fetch: one that took its whole 5 s
    deadline had served its wait when it failed, and the next token started another at once
    (the endpoint asked back to back, every token of that issuer held behind the fetches)."""
    clock = Clock(0.0)
    fetches: list[float] = []

    def slow() -> bytes:
        fetches.append(clock())
        clock.advance(5.0)
        raise TimeoutError("no whole answer within 5 s")

    store = Jwks(slow, 300, clock, 10)
    assert "keys_unavailable" == refusal(sign(CLAIMS), store=store)
    assert "keys_unavailable" == refusal(sign(CLAIMS), store=store)
    assert [0.0] == fetches
    clock.advance(1.0)
    assert "keys_unavailable" == refusal(sign(CLAIMS), store=store)
    assert [0.0, 6.0] == fetches


def test_a_known_key_is_used_while_a_fetch_for_an_unknown_one_hangs() -> None:
    """The fetch ran under the keys' lock: a token naming a made-up kid (anyone can send one)
    held every verification as long as the key endpoint took to answer."""
    entered, release = threading.Event(), threading.Event()
    answers = [jwks()]

    def fetch() -> bytes:
        if len(answers) > 1:
            entered.set()
            release.wait(30)
        answers.append(jwks())
        return answers[-1]

    clock = Clock(0.0)
    store = Jwks(fetch, 300, clock, 10)
    assert "s-1" == verify(sign(CLAIMS), store, RULES, NOW)["sid"]
    clock.advance(10)
    unknown = threading.Thread(target=refusal, args=(sign(CLAIMS, kid="made-up"),),
                               kwargs={"store": store}, daemon=True)  # fmt: skip
    unknown.start()
    try:
        assert entered.wait(5)
        known: list[str] = []
        worker = threading.Thread(
            target=lambda: known.append(verify(sign(CLAIMS), store, RULES, NOW)["sid"]),
            daemon=True,
        )
        worker.start()
        worker.join(2.0)
        assert ["s-1"] == known
    finally:
        release.set()
        unknown.join(5)


def test_keys_that_cannot_be_loaded_are_unavailable_and_the_last_good_ones_stay() -> None:
    clock = Clock(0.0)
    answers = [b"not json"]
    store = Jwks(lambda: answers[-1], 300, clock, 10)
    assert "keys_unavailable" == refusal(sign(CLAIMS), store=store)
    answers.append(jwks())
    clock.advance(10)
    assert "s-1" == verify(sign(CLAIMS), store, RULES, NOW)["sid"]
    answers.append(b"broken again")
    clock.advance(400)
    assert "s-1" == verify(sign(CLAIMS), store, RULES, NOW)["sid"], "kept after a failed fetch"


def test_a_jwks_file_is_read_and_keys_of_other_types_are_skipped(tmp_path: Path) -> None:
    """A JWKS may carry encryption keys, symmetric keys or short RSA keys: never used to
    verify, and they do not stop the signing keys from loading."""
    doc = orjson.loads(jwks())
    doc["keys"] += [
        {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "RSA", "kid": "short", "n": b64((1 << 1023).to_bytes(128, "big")), "e": "AQAB"},
        "not a key",
    ]
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps(doc))
    store = Jwks.from_file(path, Clock(0.0))
    assert "s-1" == verify(sign(CLAIMS, "ES256"), store, RULES, NOW)["sid"]
    assert "unknown_key" == refusal(sign(CLAIMS, kid="short"), store=store)
    assert "token_invalid" == refusal(sign(CLAIMS, "HS256", kid="h1"), store=store)


def test_set_rules_require_typ_and_an_iat_window_but_no_exp() -> None:
    """The Shared Signals receiver verifies SETs with the same function: no exp, a typ, iat."""
    rules = JwtRules(
        frozenset({"RS256"}), issuer="https://idp", typ="secevent+jwt", require_exp=False,
        max_age_s=600,
    )  # fmt: skip
    body = {"iss": "https://idp", "iat": NOW, "sid": "s-1"}
    token = sign(body, typ="secevent+jwt")
    assert "s-1" == verify(token, keys(), rules, NOW + 600)["sid"]
    assert "token_expired" == refusal(token, NOW + 601, rules)
    assert "token_not_yet_valid" == refusal(token, NOW - 31, rules)
    assert "token_invalid" == refusal(sign(body), NOW, rules)
    assert "token_invalid" == refusal(sign({"iss": "https://idp"}, typ="secevent+jwt"), NOW, rules)
