"""Push retry decisions and RFC 8936 poll requests."""

from __future__ import annotations

import pytest

from sessionwarden.ssf.transmitter.delivery import (
    PollRequestError,
    PushOutcome,
    backoff,
    parse_poll,
    push_outcome,
)


def test_backoff_doubles_from_half_a_second_up_to_the_maximum() -> None:
    """A down receiver is retried soon at first, then no more often than the maximum."""
    assert [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0] == [backoff(n, 10.0) for n in range(1, 8)]
    assert 10.0 == backoff(10_000, 10.0)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (202, b"", PushOutcome("delivered")),
        (200, b"", PushOutcome("delivered")),
        (400, b'{"err":"invalid_audience","description":"not me"}',
         PushOutcome("rejected", "invalid_audience", "not me")),
        (400, b"nonsense", PushOutcome("rejected", "invalid_request",
                                       "refused without an RFC 8935 error body")),
        (503, b"", PushOutcome("retry", None, "HTTP 503")),
        (401, b"", PushOutcome("retry", None, "HTTP 401")),
        (None, b"", PushOutcome("retry", None, "no answer")),
    ],
)  # fmt: skip
def test_push_answers_mean_delivered_refused_or_retry(
    status: int | None, body: bytes, expected: PushOutcome
) -> None:
    """A 400 is final (RFC 8935 2.4: never resend); everything else but 2xx is tried again."""
    assert expected == push_outcome(status, body)


def test_a_poll_request_is_read_with_its_rfc_names() -> None:
    """maxEvents, returnImmediately, ack and setErrs as RFC 8936 spells them."""
    request = parse_poll(
        b'{"maxEvents": 5, "returnImmediately": true, "ack": ["a"],'
        b' "setErrs": {"b": {"err": "invalid_key", "description": "k"}}}'
    )
    assert (5, True, ["a"]) == (request.max_events, request.return_immediately, request.ack)
    assert "invalid_key" == request.set_errs["b"].err
    assert (100, False) == (parse_poll(b"").max_events, parse_poll(b"{}").return_immediately)


@pytest.mark.parametrize(
    "body",
    [b"[", b"[]", b'{"maxEvents": -1}', b'{"maxEvents": 100000}', b'{"maxEvents": "5"}',
     b'{"other": 1}', b'{"ack": ["' + b"x" * 300 + b'"]}'],
)  # fmt: skip
def test_bad_poll_requests_are_refused(body: bytes) -> None:
    """Hostile poll bodies are a clear 400, not a crash nor a huge answer."""
    with pytest.raises(PollRequestError):
        parse_poll(body)
