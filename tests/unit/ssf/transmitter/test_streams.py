"""The stream management rules of SSF 1.0 section 8.1."""

from __future__ import annotations

from typing import Any

import pytest

from sessionwarden.ssf.transmitter.streams import (
    StreamError,
    changed,
    keeps,
    new_stream,
    parse_request,
    retention_of,
    status_view,
    stream_view,
    verification_state,
    with_status,
)
from sessionwarden.ssf.vocabulary import (
    POLL_DELIVERY,
    PUSH_DELIVERY,
    SESSION_REVOKED,
    TOKEN_CLAIMS_CHANGE,
    VERIFICATION,
)

ISS = "https://sw.example"
MAX_S = 3600.0
PUSH = {"method": PUSH_DELIVERY, "endpoint_url": "https://rp.example/events"}


def _stream(body: dict[str, Any], now: float = 100.0, allow_private: bool = False) -> Any:
    request, _ = parse_request(body, partial=False)
    return new_stream(
        request, owner="rp", stream_id="s1", now=now, allow_http_push=False,
        allow_private_push=allow_private, max_retention_s=MAX_S,
    )  # fmt: skip


def _changed(stream: Any, request: Any, named: set[str], *, replace_all: bool) -> Any:
    return changed(
        stream, request, named, replace_all=replace_all, allow_http_push=False,
        allow_private_push=False, max_retention_s=MAX_S,
    )  # fmt: skip


def test_a_new_stream_delivers_what_was_requested_and_supported() -> None:
    """events_delivered is the intersection: an unknown event type is requested but never sent."""
    stream = _stream({"delivery": PUSH, "events_requested": [SESSION_REVOKED, "urn:x:other"]})
    view = stream_view(stream, ISS, MAX_S)
    assert [SESSION_REVOKED] == view["events_delivered"]
    assert ("s1", ISS, "rp", "enabled") == (
        view["stream_id"],
        view["iss"],
        view["aud"],
        stream.status,
    )
    assert stream.wants(VERIFICATION) and not stream.wants(TOKEN_CLAIMS_CHANGE)


def test_a_poll_stream_gets_the_transmitters_poll_endpoint() -> None:
    """RFC 8936: the transmitter supplies the endpoint, whatever the receiver wrote."""
    stream = _stream({"delivery": {"method": POLL_DELIVERY, "endpoint_url": "https://evil"}})
    assert f"{ISS}/ssf/poll/s1" == stream_view(stream, ISS, MAX_S)["delivery"]["endpoint_url"]


def test_the_push_authorization_header_is_never_shown_back() -> None:
    """It is the receiver's secret: a reader of the configuration must not learn it."""
    stream = _stream({"delivery": {**PUSH, "authorization_header": "Bearer rp-secret"}})
    assert "rp-secret" not in str(stream_view(stream, ISS, MAX_S))
    assert "Bearer rp-secret" == stream.authorization_header


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ([], "JSON object"),
        ({}, "delivery is required"),
        ({"delivery": {"method": "urn:x"}}, "delivery.method"),
        ({"delivery": PUSH, "colour": "red"}, "colour: Extra inputs"),
        ({"delivery": {"method": PUSH_DELIVERY}}, "endpoint_url"),
        ({"delivery": {**PUSH, "endpoint_url": "http://rp.example/e"}}, "https"),
        ({"delivery": {**PUSH, "endpoint_url": "ftp://rp.example/e"}}, "http(s)"),
        ({"delivery": {**PUSH, "endpoint_url": "https://u:p@rp.example/"}}, "credentials"),
        ({"delivery": {**PUSH, "authorization_header": "a\r\nX-Evil: 1"}}, "one header line"),
        ({"delivery": PUSH, "events_requested": ["x" * 300]}, "256"),
    ],
)
def test_bad_stream_requests_are_refused_with_the_reason(body: Any, why: str) -> None:
    """Hostile input gets a 400 that says what is wrong, never a crash."""
    with pytest.raises(StreamError) as caught:
        _stream(body)
    assert 400 == caught.value.status
    assert why in caught.value.message


def test_plain_http_push_is_allowed_to_loopback_only() -> None:
    """Tokens travel in clear over http: only on this machine unless explicitly allowed."""
    stream = _stream(
        {"delivery": {**PUSH, "endpoint_url": "http://127.0.0.1:9/e"}}, allow_private=True
    )
    assert "http://127.0.0.1:9/e" == stream.endpoint_url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[fe80::1]/e", "link-local"),
        ("https://0.0.0.0/e", "unspecified"),
        ("https://[::ffff:169.254.169.254]/e", "link-local"),
        ("https://224.0.0.1/e", "multicast"),
        ("https://10.0.0.5/e", "private address"),
        ("https://[fd00::5]/e", "private address"),
        ("http://127.0.0.1:9/e", "private address"),
        ("https://localhost/e", "private address"),
    ],
)
def test_a_push_endpoint_written_as_an_address_must_be_one_a_push_may_reach(
    url: str, why: str
) -> None:
    """Whoever holds ssf.manage chooses where the transmitter sends requests: never to a cloud
    metadata service, and to internal networks only where the operator allowed it."""
    with pytest.raises(StreamError) as caught:
        _stream({"delivery": {**PUSH, "endpoint_url": url}})
    assert 400 == caught.value.status
    assert why in caught.value.message


def test_update_changes_only_what_it_names_and_replace_clears_the_rest() -> None:
    """PATCH and PUT differ exactly there (SSF 1.0 sections 8.1.1.3 and 8.1.1.4)."""
    stream = _stream({"delivery": PUSH, "events_requested": [SESSION_REVOKED], "description": "d"})
    patch, named = parse_request(
        {"stream_id": "s1", "iss": ISS, "events_requested": [TOKEN_CLAIMS_CHANGE]}, partial=True
    )
    updated = _changed(stream, patch, named, replace_all=False)
    assert ((TOKEN_CLAIMS_CHANGE,), "d", PUSH["endpoint_url"]) == (
        updated.events_requested,
        updated.description,
        updated.endpoint_url,
    )
    put, named = parse_request(
        {"stream_id": "s1", "delivery": {"method": POLL_DELIVERY}}, partial=False
    )
    replaced = _changed(stream, put, named, replace_all=True)
    assert ((), None, POLL_DELIVERY) == (
        replaced.events_requested,
        replaced.description,
        replaced.method,
    )


def test_status_changes_are_checked() -> None:
    """Only the three statuses of SSF exist; the reason is kept and shown."""
    stream = _stream({"delivery": PUSH})
    paused = with_status(stream, {"stream_id": "s1", "status": "paused", "reason": "maintenance"})
    assert {"stream_id": "s1", "status": "paused", "reason": "maintenance"} == status_view(paused)
    assert paused.holds_events
    assert not with_status(stream, {"stream_id": "s1", "status": "disabled"}).holds_events
    with pytest.raises(StreamError, match="status must be"):
        with_status(stream, {"stream_id": "s1", "status": "asleep"})


def test_verification_is_rate_limited_by_the_minimum_interval() -> None:
    """A receiver cannot make the transmitter sign in a loop."""
    stream = _stream({"delivery": PUSH})
    assert "st" == verification_state(stream, {"stream_id": "s1", "state": "st"}, 100.0)
    from dataclasses import replace

    verified = replace(stream, last_verification_at=100.0)
    with pytest.raises(StreamError) as caught:
        verification_state(verified, {"stream_id": "s1"}, 105.0)
    assert 429 == caught.value.status
    assert None is verification_state(verified, {"stream_id": "s1"}, 110.0)


def test_a_stream_asks_for_its_own_retention_bounded_by_the_transmitters() -> None:
    """event_retention_seconds: the transmitter's retention is the default and the most."""
    default = _stream({"delivery": PUSH})
    assert (None, MAX_S) == (default.retention_s, retention_of(default, MAX_S))
    assert 3600 == stream_view(default, ISS, MAX_S)["event_retention_seconds"]
    own = _stream({"delivery": PUSH, "event_retention_seconds": 600})
    assert 600 == stream_view(own, ISS, MAX_S)["event_retention_seconds"]
    with pytest.raises(StreamError, match="at most 3600") as caught:
        _stream({"delivery": PUSH, "event_retention_seconds": 3601})
    assert 400 == caught.value.status
    for bad in (0, -5, 1.5, "600"):
        with pytest.raises(StreamError):
            _stream({"delivery": PUSH, "event_retention_seconds": bad})
    # The transmitter's retention lowered after the stream asked for more: the lower one holds.
    assert 300.0 == retention_of(own, 300.0)


def test_update_sets_the_retention_and_replace_without_it_restores_the_default() -> None:
    stream = _stream({"delivery": PUSH, "event_retention_seconds": 600})
    patch, named = parse_request({"stream_id": "s1", "description": "d"}, partial=True)
    assert 600.0 == _changed(stream, patch, named, replace_all=False).retention_s
    patch, named = parse_request({"stream_id": "s1", "event_retention_seconds": 60}, partial=True)
    assert 60.0 == _changed(stream, patch, named, replace_all=False).retention_s
    put, named = parse_request({"stream_id": "s1", "delivery": PUSH}, partial=False)
    assert None is _changed(stream, put, named, replace_all=True).retention_s


def test_an_event_is_kept_for_its_streams_retention_only() -> None:
    """The decision the reader takes for each stream, on a fake clock."""
    now = 10_000.0
    short = _stream({"delivery": PUSH, "event_retention_seconds": 60})
    default = _stream({"delivery": PUSH})
    assert keeps(short, now - 60, now, MAX_S) and not keeps(short, now - 60.001, now, MAX_S)
    assert keeps(default, now - 3600, now, MAX_S)
    assert not keeps(default, now - 3600.001, now, MAX_S)
