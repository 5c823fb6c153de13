"""The receiver's counters on its /metrics: every SET's outcome, by transmitter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from sessionwarden.ssf.errors import SET_ERROR_CODES

OUTCOMES = ("accepted", "ignored", "refused", "duplicate", "unavailable")


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry, transmitters: list[str]) -> None:
        self.sets = Counter(
            "sessionwarden_ssf_received_sets",
            "Security Event Tokens received, by transmitter and outcome (accepted: its event is "
            "on auth.events; ignored: valid, nothing to do; refused: with its RFC 8935 code; "
            "duplicate: a poll's re-delivery, acknowledged again; unavailable: try again).",
            ["transmitter", "outcome", "code"],
            registry=registry,
        )
        self.requests_refused = Counter(
            "sessionwarden_ssf_refused_requests",
            "Push requests refused before any SET was read (authentication, size, media type), "
            "by RFC 8935 code.",
            ["code"],
            registry=registry,
        )
        self.poll_failures = Counter(
            "sessionwarden_ssf_poll_failures",
            "Polls that failed (the transmitter unreachable or its answer not RFC 8936).",
            ["transmitter"],
            registry=registry,
        )
        for name in transmitters:  # every series exists from the start
            for outcome in OUTCOMES:
                if outcome != "refused":
                    self.sets.labels(name, outcome, "")
            for code in SET_ERROR_CODES:
                self.sets.labels(name, "refused", code)
            self.poll_failures.labels(name)
        for code in SET_ERROR_CODES:
            self.requests_refused.labels(code)

    def outcome(self, transmitter: str, outcome: str, code: str = "") -> None:
        self.sets.labels(transmitter, outcome, code).inc()
