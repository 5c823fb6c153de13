"""RFC 8936 bodies, pure: the poll request we send and the transmitter's answer we read.

A request acknowledges the SETs taken since the last poll (``ack``), reports the refused ones
with their RFC 8935 code (``setErrs``), and asks for up to ``maxEvents`` more without waiting
(``returnImmediately``: the poller paces itself). The answer is ``{"sets": {jti: SET},
"moreAvailable": bool}``; anything else, or more SETs than asked for, is a
:class:`PollAnswerError` and nothing of it is taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from sessionwarden.errors import SessionwardenError


class PollAnswerError(SessionwardenError):
    """The transmitter's answer is not an RFC 8936 poll response."""


@dataclass(frozen=True)
class PollAnswer:
    sets: dict[str, str]
    more_available: bool


def poll_request(
    acks: Sequence[str], errors: Mapping[str, Mapping[str, str]], max_events: int
) -> bytes:
    body: dict[str, object] = {"maxEvents": max_events, "returnImmediately": True}
    if acks:
        body["ack"] = list(acks)
    if errors:
        body["setErrs"] = {jti: dict(err) for jti, err in errors.items()}
    return orjson.dumps(body)


def parse_poll_answer(body: bytes, max_events: int) -> PollAnswer:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PollAnswerError("the poll answer is not JSON") from None
    if not isinstance(doc, dict):
        raise PollAnswerError("the poll answer is not a JSON object")
    sets = doc.get("sets", {})
    more = doc.get("moreAvailable", False)
    if not isinstance(sets, dict) or not isinstance(more, bool):
        raise PollAnswerError('"sets" must be an object and "moreAvailable" a boolean')
    if len(sets) > max_events:
        raise PollAnswerError(f"{len(sets)} SETs in one answer; {max_events} were asked for")
    if not all(isinstance(jti, str) and isinstance(token, str) for jti, token in sets.items()):
        raise PollAnswerError('"sets" must map jtis to SET strings')
    return PollAnswer(sets, more)
