"""The stream management rules of SSF 1.0 section 8.1, as pure functions over plain values.

A receiver supplies ``delivery``, ``events_requested`` and ``description``, and may ask for
``event_retention_seconds`` (how long its undelivered events wait, a property of this
transmitter: section 8.1.1 lets a transmitter define more; at most and by default the
transmitter's ``ssf_tx_retention_s``); the transmitter supplies the rest (``stream_id``,
``iss``, ``aud``, ``events_supported``, ``events_delivered``, the poll endpoint).
Transmitter-supplied properties a receiver echoes back in an update are ignored; anything
unknown is refused. A stream belongs to the client that created it: no other
client can see or change it.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sessionwarden.contracts.validation import error_lines
from sessionwarden.outbound import reachable
from sessionwarden.ssf.vocabulary import (
    POLL_DELIVERY,
    PUSH_DELIVERY,
    SESSION_REVOKED,
    STREAM_STATUSES,
    TOKEN_CLAIMS_CHANGE,
    VERIFICATION,
)

EVENTS_SUPPORTED: Final = (SESSION_REVOKED, TOKEN_CLAIMS_CHANGE, VERIFICATION)
"""What this transmitter sends: verification is always delivered, never needs requesting."""
TRANSMITTER_SUPPLIED: Final = frozenset(
    {"stream_id", "iss", "aud", "events_supported", "events_delivered", "min_verification_interval"}
)
MAX_AUTHORIZATION = 4096
MAX_SUBJECTS: Final = 10_000
"""Subjects a receiver may add to one stream, at most."""
MIN_VERIFICATION_INTERVAL_S: Final = 10


class StreamError(Exception):
    """A request the stream API refuses: its HTTP status and a message for the receiver."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class DeliveryRequest(_Strict):
    method: Literal["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"]
    endpoint_url: str | None = Field(default=None, max_length=2048)
    authorization_header: str | None = Field(default=None, max_length=MAX_AUTHORIZATION)


class StreamRequest(_Strict):
    """What a receiver may set (create, replace; an update sets only what it names)."""

    delivery: DeliveryRequest | None = None
    events_requested: list[str] = Field(default_factory=list, max_length=64)
    description: str | None = Field(default=None, max_length=256)
    event_retention_seconds: int | None = Field(default=None, ge=1)


@dataclass(frozen=True, slots=True)
class Stream:
    stream_id: str
    owner: str
    aud: str
    method: str
    endpoint_url: str | None
    authorization_header: str | None
    events_requested: tuple[str, ...]
    description: str | None
    status: str
    reason: str | None
    created_at: float
    last_verification_at: float | None = None
    retention_s: float | None = None
    """The receiver's ``event_retention_seconds``; None: the transmitter's retention."""

    @property
    def events_delivered(self) -> tuple[str, ...]:
        return tuple(e for e in EVENTS_SUPPORTED if e in self.events_requested)

    def wants(self, event_type: str) -> bool:
        """Whether an event of this type is queued for the stream (verification always)."""
        return event_type == VERIFICATION or event_type in self.events_delivered

    @property
    def holds_events(self) -> bool:
        """Enabled and paused streams queue events; a disabled one drops them (8.1.2)."""
        return self.status != "disabled"


def retention_of(stream: Stream, max_s: float) -> float:
    """How long an event of the stream waits for delivery or acknowledgement (a paused
    stream, a receiver down): the stream's own retention, never more than the transmitter's
    ``max_s``, which is also the default. A state written before streams had their own
    retention has none: the default."""
    return max_s if stream.retention_s is None else min(stream.retention_s, max_s)


def keeps(stream: Stream, issued_at: float, now: float, max_s: float) -> bool:
    """Whether an event issued at ``issued_at`` is still within the stream's retention."""
    return issued_at >= now - retention_of(stream, max_s)


def parse_request(body: Any, *, partial: bool) -> tuple[StreamRequest, set[str]]:
    """The receiver-supplied part of a create/update/replace body, and the fields it named.
    Transmitter-supplied fields are dropped; unknown ones and bad values are a 400."""
    if not isinstance(body, dict):
        raise StreamError(400, "the body must be a JSON object")
    given = {k: v for k, v in body.items() if k not in TRANSMITTER_SUPPLIED}
    try:
        request = StreamRequest.model_validate(given)
    except ValidationError as exc:
        raise StreamError(400, "; ".join(error_lines(exc, root="stream"))[:500]) from None
    if not partial and request.delivery is None:
        raise StreamError(400, "delivery is required")
    return request, set(given)


def new_stream(
    request: StreamRequest,
    *,
    owner: str,
    stream_id: str,
    now: float,
    allow_http_push: bool,
    allow_private_push: bool,
    max_retention_s: float,
) -> Stream:
    """A stream made from a create request: enabled, its audience the creating client."""
    assert request.delivery is not None  # parse_request(partial=False) guarantees it
    method, url, auth = _delivery(request.delivery, allow_http_push, allow_private_push)
    return Stream(
        stream_id=stream_id,
        owner=owner,
        aud=owner,
        method=method,
        endpoint_url=url,
        authorization_header=auth,
        events_requested=_events(request.events_requested),
        description=request.description,
        status="enabled",
        reason=None,
        created_at=now,
        retention_s=_retention(request.event_retention_seconds, max_retention_s),
    )


def changed(
    stream: Stream,
    request: StreamRequest,
    named: set[str],
    *,
    replace_all: bool,
    allow_http_push: bool,
    allow_private_push: bool,
    max_retention_s: float,
) -> Stream:
    """A stream after an update (PATCH: only what the request names) or a replacement (PUT:
    everything receiver-supplied; what is left out is cleared)."""
    out = stream
    if replace_all or "delivery" in named:
        if request.delivery is None:
            raise StreamError(400, "delivery is required")
        method, url, auth = _delivery(request.delivery, allow_http_push, allow_private_push)
        out = replace(out, method=method, endpoint_url=url, authorization_header=auth)
    if replace_all or "events_requested" in named:
        out = replace(out, events_requested=_events(request.events_requested))
    if replace_all or "description" in named:
        out = replace(out, description=request.description)
    if replace_all or "event_retention_seconds" in named:
        retention = _retention(request.event_retention_seconds, max_retention_s)
        out = replace(out, retention_s=retention)
    return out


def _retention(asked: int | None, max_s: float) -> float | None:
    if asked is not None and asked > max_s:
        raise StreamError(400, f"event_retention_seconds is at most {int(max_s)}")
    return None if asked is None else float(asked)


def with_status(stream: Stream, body: Any) -> Stream:
    """A stream after a status request (``{"stream_id", "status", "reason"?}``)."""
    if not isinstance(body, dict) or set(body) - {"stream_id", "status", "reason"}:
        raise StreamError(400, "a status request has stream_id, status and reason only")
    status, reason = body.get("status"), body.get("reason")
    if status not in STREAM_STATUSES:
        raise StreamError(400, f"status must be one of {', '.join(STREAM_STATUSES)}")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 256):
        raise StreamError(400, "reason must be a string of at most 256 characters")
    return replace(stream, status=str(status), reason=reason)


def verification_state(stream: Stream, body: Any, now: float) -> str | None:
    """The ``state`` to echo in a verification event, once the minimum interval has passed."""
    if not isinstance(body, dict) or set(body) - {"stream_id", "state"}:
        raise StreamError(400, "a verification request has stream_id and state only")
    state = body.get("state")
    if state is not None and (not isinstance(state, str) or len(state) > 256):
        raise StreamError(400, "state must be a string of at most 256 characters")
    last = stream.last_verification_at
    if last is not None and now - last < MIN_VERIFICATION_INTERVAL_S:
        raise StreamError(429, f"at most one verification per {MIN_VERIFICATION_INTERVAL_S} s")
    return state


def stream_view(stream: Stream, issuer: str, max_retention_s: float) -> dict[str, Any]:
    """The stream's configuration as SSF 1.0 section 8.1.1 shows it, with the retention that
    applies to it. The push endpoint's authorization header is a secret the receiver gave:
    never shown back."""
    delivery: dict[str, Any] = {"method": stream.method}
    if stream.method == POLL_DELIVERY:
        delivery["endpoint_url"] = poll_url(issuer, stream.stream_id)
    else:
        delivery["endpoint_url"] = stream.endpoint_url
    view: dict[str, Any] = {
        "stream_id": stream.stream_id,
        "iss": issuer,
        "aud": stream.aud,
        "events_supported": list(EVENTS_SUPPORTED),
        "events_requested": list(stream.events_requested),
        "events_delivered": list(stream.events_delivered),
        "delivery": delivery,
        "min_verification_interval": MIN_VERIFICATION_INTERVAL_S,
        "event_retention_seconds": int(retention_of(stream, max_retention_s)),
    }
    if stream.description is not None:
        view["description"] = stream.description
    return view


def status_view(stream: Stream) -> dict[str, Any]:
    view: dict[str, Any] = {"stream_id": stream.stream_id, "status": stream.status}
    if stream.reason:
        view["reason"] = stream.reason
    return view


def poll_url(issuer: str, stream_id: str) -> str:
    return f"{issuer.rstrip('/')}/ssf/poll/{stream_id}"


def _events(requested: list[str]) -> tuple[str, ...]:
    for event in requested:
        if len(event) > 256:
            raise StreamError(400, "an event type is at most 256 characters")
    return tuple(dict.fromkeys(requested))


def _delivery(
    delivery: DeliveryRequest, allow_http_push: bool, allow_private_push: bool
) -> tuple[str, str | None, str | None]:
    if delivery.method == POLL_DELIVERY:
        # The transmitter supplies the poll endpoint; one given by the receiver is ignored.
        return POLL_DELIVERY, None, None
    if delivery.endpoint_url is None:
        raise StreamError(400, "push delivery needs delivery.endpoint_url")
    check_push_url(delivery.endpoint_url, allow_http_push, allow_private_push)
    auth = delivery.authorization_header
    if auth is not None and any(c in auth for c in "\r\n\0"):
        raise StreamError(400, "delivery.authorization_header must be one header line")
    return PUSH_DELIVERY, delivery.endpoint_url, auth


def check_push_url(url: str, allow_http: bool, allow_private: bool) -> None:
    """https anywhere; plain http only to a loopback address unless allowed. A host written as
    an address must be one a push may reach (:func:`sessionwarden.outbound.reachable`; a
    name is checked when a push resolves it, every time)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise StreamError(400, "delivery.endpoint_url is not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise StreamError(400, "delivery.endpoint_url must be an http(s) URL with a host")
    if parts.username or parts.password or parts.fragment:
        raise StreamError(400, "delivery.endpoint_url must carry no credentials nor fragment")
    if parts.scheme == "http" and not allow_http and not _loopback(parts.hostname):
        raise StreamError(400, "delivery.endpoint_url must be https (http only to loopback)")
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    if _is_address(host) and not reachable(host, allow_private):
        raise StreamError(
            400,
            "delivery.endpoint_url may not name a link-local, unspecified or multicast address"
            if not reachable(host, True)
            else "delivery.endpoint_url names a private address (ssf_tx_allow_private_push)",
        )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
