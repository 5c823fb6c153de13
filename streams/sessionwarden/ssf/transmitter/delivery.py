"""Delivery decisions, pure: when to retry a push, what a receiver's answer means, and what a
poll request asks (RFC 8935, RFC 8936).

A push answered 202 (or any 2xx) is delivered. A 400 with an RFC 8935 error body is the
receiver refusing that SET: it is never sent again (RFC 8935 section 2.4) and is recorded with
its error. Anything else (5xx, 401/403/404/429, a timeout, a refused connection) is the
receiver not taking it now: the same token (same jti) is tried again after an exponential
backoff from ``FIRST_RETRY_S`` up to the configured maximum, until the event's retention ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sessionwarden.contracts.validation import error_lines
from sessionwarden.ssf.errors import INVALID_REQUEST, SET_ERROR_CODES

FIRST_RETRY_S: Final = 0.5
MAX_POLL_EVENTS: Final = 1000
"""The most SETs one poll answer carries (and the default when ``maxEvents`` is absent: 100)."""
DEFAULT_POLL_EVENTS: Final = 100


def backoff(attempts: int, max_s: float) -> float:
    """Seconds to wait after the ``attempts``-th failed push (1, 2, ...): 0.5, 1, 2, ... max."""
    return float(min(max_s, FIRST_RETRY_S * 2 ** min(max(attempts - 1, 0), 30)))


@dataclass(frozen=True, slots=True)
class PushOutcome:
    kind: Literal["delivered", "rejected", "retry"]
    err: str | None = None
    description: str | None = None


def push_outcome(status: int | None, body: bytes) -> PushOutcome:
    """What a push answer means; ``status`` None is no answer (timeout, connection error)."""
    if status is not None and 200 <= status < 300:
        return PushOutcome("delivered")
    if status == 400:
        err, description = INVALID_REQUEST, "refused without an RFC 8935 error body"
        try:
            doc = orjson.loads(body[:4096])
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and doc.get("err") in SET_ERROR_CODES:
            err = str(doc["err"])
            text = doc.get("description")
            description = text[:256] if isinstance(text, str) else ""
        return PushOutcome("rejected", err, description)
    return PushOutcome("retry", None, "no answer" if status is None else f"HTTP {status}")


class _SetErr(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    err: str = Field(max_length=64)
    description: str = Field(default="", max_length=512)


class PollRequest(BaseModel):
    """An RFC 8936 poll request body."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)
    max_events: int = Field(
        default=DEFAULT_POLL_EVENTS, ge=0, le=MAX_POLL_EVENTS, alias="maxEvents"
    )
    return_immediately: bool = Field(default=False, alias="returnImmediately")
    ack: list[str] = Field(default_factory=list, max_length=MAX_POLL_EVENTS)
    set_errs: dict[str, _SetErr] = Field(
        default_factory=dict, max_length=MAX_POLL_EVENTS, alias="setErrs"
    )


class PollRequestError(ValueError):
    """A poll body that is not an RFC 8936 request; the message is for the receiver."""


def parse_poll(body: bytes) -> PollRequest:
    """The poll request in ``body`` (an empty body is a default request)."""
    if not body.strip():
        return PollRequest()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PollRequestError("the body is not JSON") from None
    try:
        request = PollRequest.model_validate(doc)
    except ValidationError as exc:
        raise PollRequestError("; ".join(error_lines(exc, root="poll"))[:500]) from None
    if any(len(j) > 256 for j in (*request.ack, *request.set_errs)):
        raise PollRequestError("a jti is at most 256 characters")
    return request
