"""The RFC 8936 poller: one asyncio task per poll transmitter, its HTTP exchanges on that
transmitter's lane (:mod:`sessionwarden.ssf.receiver.lanes`).

Each round POSTs :func:`poll_request` (the acknowledgements and errors of the last round, and
``maxEvents``) with the transmitter's bearer token (a fixed one, or an OAuth access token that
is fetched again once after a 401, :mod:`sessionwarden.ssf.receiver.bearer`), and takes every
SET of the answer the way a pushed one is taken: an accepted or ignored SET is acknowledged in
the next round, a refused one goes back in ``setErrs`` with its RFC 8935 code, one that cannot
be taken now is neither (the transmitter delivers it again), and a SET taken before is
acknowledged again. A round that brought SETs or left acknowledgements to send is followed at
once by the next; otherwise the poller waits ``interval_s``. A transmitter that cannot be
reached, or answers something that is not an RFC 8936 response, is tried again after a pause
that doubles up to 30 s; it never stops the receiver or the other pollers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from sessionwarden.ssf.receiver.bearer import Bearer, post
from sessionwarden.ssf.receiver.intake import Replayed
from sessionwarden.ssf.receiver.poll import (
    PollAnswer,
    PollAnswerError,
    parse_poll_answer,
    poll_request,
)
from sessionwarden.ssf.receiver.refusal import Refused, Unavailable
from sessionwarden.ssf.receiver.taking import Receiving, on_lane, take

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
Post = Callable[[str, bytes, str, int], bytes]
"""(url, body, bearer token, largest answer) -> the answer's body; raises OSError."""


def http_post(url: str, body: bytes, token: str, max_bytes: int) -> bytes:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {token}",
    }
    answer = post(url, body, headers, max_bytes)
    if len(answer) > max_bytes:
        raise PollAnswerError(f"the poll answer is larger than {max_bytes} bytes")
    return answer


@dataclass(frozen=True)
class PollTarget:
    transmitter: str
    url: str
    bearer: Bearer
    max_events: int
    interval_s: float
    max_answer_bytes: int


class Poller:
    def __init__(self, ctx: Receiving, target: PollTarget, post: Post = http_post) -> None:
        self.ctx = ctx
        self.target = target
        self._post = post
        self.acks: list[str] = []
        self.errors: dict[str, dict[str, str]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        pause = self.target.interval_s
        while not stop.is_set():
            try:
                answer = await self.poll_once()
            except Exception:  # a poller that dies stops a transmitter's signals for good
                log.exception("poll round failed", extra={"transmitter": self.target.transmitter})
                self.ctx.metrics.poll_failures.labels(self.target.transmitter).inc()
                answer = None
            if answer is None:
                pause = min(MAX_BACKOFF_S, pause * 2)
            else:
                pause = self.target.interval_s
                if answer.sets or answer.more_available:
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)

    def _exchange(self, body: bytes) -> bytes:
        """One POST with the bearer token; after a 401, once more with a new token."""
        bearer = self.target.bearer
        token = bearer.token()
        try:
            return self._post(self.target.url, body, token, self.target.max_answer_bytes)
        except urllib.error.HTTPError as exc:
            if exc.code != 401 or not bearer.rejected(token):
                raise
        return self._post(self.target.url, body, bearer.token(), self.target.max_answer_bytes)

    async def poll_once(self) -> PollAnswer | None:
        """One round; None when the poll itself failed (acknowledgements kept for the next)."""
        name = self.target.transmitter
        body = poll_request(self.acks, self.errors, self.target.max_events)
        try:  # on the transmitter's lane: never a thread another transmitter waits for
            raw = await on_lane(self.ctx, name, self._exchange, body, bounded=False)
            answer = parse_poll_answer(raw, self.target.max_events)
        except (OSError, urllib.error.URLError, PollAnswerError, ValueError) as exc:
            self.ctx.metrics.poll_failures.labels(name).inc()
            log.warning("poll failed", extra={"transmitter": name, "error": str(exc)[:200]})
            return None
        self.acks, self.errors = [], {}
        for jti, token in answer.sets.items():
            try:
                await take(self.ctx, name, token)
                self.acks.append(jti)
            except Replayed:
                self.ctx.metrics.outcome(name, "duplicate")
                self.acks.append(jti)
            except Refused as refused:
                self.errors[jti] = refused.body()
            except Unavailable:
                pass  # not acknowledged: delivered again
        return answer
