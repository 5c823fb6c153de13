"""The bearer token a poller sends: a fixed one from a file, or an OAuth 2.0 access token got
with the client-credentials grant (Keycloak's SSF poll endpoint wants one, and it expires).

:class:`ClientCredentials` fetches a token from the token endpoint on first use, keeps it for
most of its ``expires_in`` (:class:`sessionwarden.oauth.TokenCache`), and when the transmitter
answers 401 forgets it so the poller fetches a new one and tries once more. The client secret
and the tokens are never logged; a token endpoint's error is its status alone.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Protocol

from sessionwarden.oauth import MAX_TOKEN_ANSWER, TokenCache, parse_token_answer, token_request
from sessionwarden.outbound import fetch

Fetch = Callable[[str, bytes], bytes]
"""(token endpoint, form body) -> its 200 answer's body; raises OSError otherwise."""


class Bearer(Protocol):
    def token(self) -> str:
        """The token to send now (may block: called off the event loop)."""
        ...

    def rejected(self, token: str) -> bool:
        """The transmitter refused ``token`` (401): whether another one is worth a try."""
        ...


class StaticBearer:
    """The token of ``poll_token_file``: the same until the operator changes it."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def rejected(self, token: str) -> bool:
        return False


def post(url: str, body: bytes, headers: dict[str, str], limit: int) -> bytes:
    """POST ``body``; the answer's first ``limit + 1`` bytes (a longer one is the caller's to
    refuse), within 10 s in all and from that URL's origin only
    (:func:`sessionwarden.outbound.fetch`). An answer other than 2xx raises urllib's HTTPError
    (an OSError)."""
    request = urllib.request.Request(  # http(s): the settings' patterns say so
        url, data=body, method="POST", headers=headers
    )
    return fetch(request, timeout_s=10, max_bytes=limit)


def http_fetch(url: str, body: bytes) -> bytes:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    try:
        return post(url, body, headers, MAX_TOKEN_ANSWER)
    except urllib.error.HTTPError as exc:  # its body may echo the request: never shown
        raise OSError(f"the token endpoint answered HTTP {exc.code}") from None


class ClientCredentials:
    """Access tokens of ``client_id`` from ``token_url``, cached until shortly before they
    expire; thread-safe (pollers fetch in executor threads)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        secret: str,
        scope: str,
        clock: Callable[[], float],
        fetch: Fetch = http_fetch,
    ) -> None:
        self._url = token_url
        self._form = token_request(client_id, secret, scope)
        self._clock = clock
        self._fetch = fetch
        self._cache = TokenCache()
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            cached = self._cache.current(now)
            if cached is not None:
                return cached
            token, expires_in = parse_token_answer(self._fetch(self._url, self._form))
            self._cache.keep(token, expires_in, now)
            return token

    def rejected(self, token: str) -> bool:
        with self._lock:
            self._cache.forget(token)
        return True

    def __repr__(self) -> str:  # never the secret
        return f"ClientCredentials({self._url!r})"
