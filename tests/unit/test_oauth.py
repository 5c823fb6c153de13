"""OAuth client credentials, pure: the token answer and when a cached token is used."""

from __future__ import annotations

import pytest

from sessionwarden.oauth import TokenAnswerError, TokenCache, parse_token_answer, token_request


def test_a_token_is_used_until_shortly_before_it_expires() -> None:
    """expires_in 300 s: used for 240 s (a fifth kept as margin), then fetched anew."""
    cache = TokenCache()
    assert None is cache.current(1000.0)
    cache.keep("t1", 300, 1000.0)
    assert "t1" == cache.current(1000.0)
    assert "t1" == cache.current(1239.999)
    assert None is cache.current(1240.0)


def test_a_refused_token_is_forgotten_but_not_its_successor() -> None:
    """Two pollers saw the same 401: the second must not drop the token the first fetched."""
    cache = TokenCache()
    cache.keep("t1", 300, 0.0)
    cache.forget("t1")
    assert None is cache.current(1.0)
    cache.keep("t2", 300, 1.0)
    cache.forget("t1")
    assert "t2" == cache.current(2.0)


def test_a_token_without_a_lifetime_is_kept_for_most_of_a_minute() -> None:
    token, expires_in = parse_token_answer(b'{"access_token": "abc", "token_type": "Bearer"}')
    cache = TokenCache()
    cache.keep(token, expires_in, 0.0)
    assert ("abc", "abc", None) == (token, cache.current(47.9), cache.current(48.0))


@pytest.mark.parametrize(
    "answer",
    [b"", b"[]", b"{", b'{"expires_in": 300}', b'{"access_token": ""}',
     b'{"access_token": 7}', b'{"access_token": "a", "expires_in": "300"}',
     b'{"access_token": "a", "expires_in": true}'],
)  # fmt: skip
def test_an_unusable_token_answer_is_refused(answer: bytes) -> None:
    with pytest.raises(TokenAnswerError):
        parse_token_answer(answer)


def test_the_request_is_a_form_with_the_scope_only_when_given() -> None:
    assert b"grant_type=client_credentials&client_id=a&client_secret=b%26c" == token_request(
        "a", "b&c"
    )
    assert token_request("a", "b", "ssf.read ssf.manage").endswith(b"&scope=ssf.read+ssf.manage")
