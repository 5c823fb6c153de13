"""Bearer tokens and SSF scopes: the token file holds hashes, introspection answers are checked."""

from __future__ import annotations

import urllib.parse
import urllib.request

import pytest

from sessionwarden.errors import ConfigError
from sessionwarden.ssf.transmitter.auth import (
    MANAGE,
    MAX_CACHED,
    READ,
    Authorizer,
    Introspector,
    Principal,
    bearer,
    introspected,
    parse_token_file,
    token_hash,
)


def test_a_token_file_line_vouches_for_the_token_with_that_hash_only() -> None:
    """The file never holds a usable token, and a wrong token matches nothing."""
    table = parse_token_file(f"# receivers\n\nrp {token_hash('t0k3n')} ssf.read\n")
    authorize = Authorizer(table)
    assert Principal("rp", frozenset({READ})) == authorize("Bearer t0k3n")
    assert None is authorize("Bearer other")
    assert None is authorize("Basic dDBrM246")
    assert None is authorize(None)


def test_manage_includes_read_but_read_is_not_manage() -> None:
    """ssf.read tokens can poll and look, never change a stream."""
    assert Principal("rp", frozenset({MANAGE})).may(READ)
    assert not Principal("rp", frozenset({READ})).may(MANAGE)


@pytest.mark.parametrize(
    "line",
    ["rp notahash ssf.read", f"rp {token_hash('x')} ssf.admin", f"r p {token_hash('x')}"],
)
def test_bad_token_file_lines_name_the_line(line: str) -> None:
    with pytest.raises(ConfigError, match="line 1"):
        parse_token_file(line)


def test_bearer_parsing_is_strict() -> None:
    assert "abc" == bearer("Bearer abc")
    assert "abc" == bearer("bearer  abc")
    assert None is bearer("Bearer a b")
    assert None is bearer("Bearer " + "x" * 5000)


def test_introspection_answers_are_trusted_only_when_active_unexpired_and_scoped() -> None:
    """RFC 7662: inactive, expired or scope-less tokens are refused; the cache never outlives
    the token."""
    now = 1000.0
    ok = {"active": True, "client_id": "rp", "scope": "openid ssf.manage", "exp": 1010}
    assert (Principal("rp", frozenset({MANAGE})), 10.0) == introspected(ok, now)
    assert None is introspected({**ok, "active": False}, now)[0]
    assert None is introspected({**ok, "exp": 999}, now)[0]
    assert None is introspected({**ok, "scope": "openid"}, now)[0]
    assert None is introspected({**ok, "client_id": 7}, now)[0]
    assert None is introspected("nonsense", now)[0]
    assert 30.0 == introspected({**ok, "exp": None}, now)[1]


def test_a_flood_of_made_up_tokens_never_evicts_a_vouched_one() -> None:
    """Unauthenticated callers must not push a receiver's good token out of the cache (each of
    its requests would then wait on the introspection endpoint again)."""
    asked: list[str] = []

    def send(request: urllib.request.Request, timeout_s: float) -> bytes:
        token = urllib.parse.parse_qs(bytes(request.data or b"").decode())["token"][0]
        asked.append(token)
        if token == "good":
            return b'{"active": true, "client_id": "rp", "scope": "ssf.read"}'
        return b'{"active": false}'

    introspect = Introspector("https://idp.example/introspect", "tx", "s", lambda: 1000.0,
                              send=send)  # fmt: skip
    assert Principal("rp", frozenset({READ})) == introspect("good")
    for n in range(MAX_CACHED + 5):
        assert None is introspect(f"made-up-{n}")
    assert None is introspect("made-up-1")
    assert Principal("rp", frozenset({READ})) == introspect("good")
    assert 1 == asked.count("good")
