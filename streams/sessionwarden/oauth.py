"""OAuth 2.0 client credentials (RFC 6749 section 4.4), pure: the token request, the token
endpoint's answer, and when a cached access token is used or fetched anew.

A token is used for ``TOKEN_MARGIN`` of its ``expires_in`` (60 s when the answer names none),
so it is replaced shortly before it expires, never used after; one a resource server refused
(401) is forgotten, so the next use fetches a new one. Shells do the HTTP.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Final

import orjson

TOKEN_MARGIN: Final = 0.8
DEFAULT_EXPIRES_IN: Final = 60.0
MAX_TOKEN_ANSWER: Final = 65_536
"""The largest token endpoint answer read."""


class TokenAnswerError(ValueError):
    """The token endpoint's answer holds no usable access token (never quotes the answer)."""


def token_request(client_id: str, secret: str, scope: str = "") -> bytes:
    """The form body of a client-credentials token request."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    if scope:
        form["scope"] = scope
    return urllib.parse.urlencode(form).encode()


def parse_token_answer(body: bytes) -> tuple[str, float]:
    """``(access_token, expires_in)`` of a token endpoint's 200 answer."""
    try:
        doc = orjson.loads(body[:MAX_TOKEN_ANSWER])
    except orjson.JSONDecodeError:
        raise TokenAnswerError("the token answer is not JSON") from None
    if not isinstance(doc, dict):
        raise TokenAnswerError("the token answer is not a JSON object")
    token, lifetime = doc.get("access_token"), doc.get("expires_in", DEFAULT_EXPIRES_IN)
    if not isinstance(token, str) or not token or len(token) > 16_384:
        raise TokenAnswerError("the token answer has no access_token")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
        raise TokenAnswerError("the token answer's expires_in is not a number")
    return token, float(lifetime)


def good_until(now: float, expires_in: float) -> float:
    """Until when a token fetched at ``now`` is used."""
    return now + max(0.0, expires_in) * TOKEN_MARGIN


@dataclass
class TokenCache:
    """One cached access token and until when it is used (not thread-safe: callers lock)."""

    token: str | None = None
    until: float = 0.0

    def current(self, now: float) -> str | None:
        """The cached token while it is good, else None (fetch one)."""
        return self.token if self.token is not None and now < self.until else None

    def keep(self, token: str, expires_in: float, now: float) -> None:
        self.token, self.until = token, good_until(now, expires_in)

    def forget(self, token: str) -> None:
        """A token was refused: drop it, unless another replaced it meanwhile."""
        if self.token == token:
            self.token, self.until = None, 0.0
