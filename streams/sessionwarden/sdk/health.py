"""What the listener tells operators about its health: one ERROR line on every transition into
unhealthy, a reminder every 30 s while it lasts, and a WARNING when it is current again. The
reminders come from the listener's thread: when that thread dies, its last line says so."""

from __future__ import annotations

import logging

# The listener's own lines, under its logger: operators filter and alert on that name.
log = logging.getLogger("sessionwarden.sdk.listener")

REMIND_UNHEALTHY_S = 30.0


class HealthLog:
    def __init__(self, topic: str, staleness_budget_s: float, fail_closed: bool) -> None:
        self._topic = topic
        self._budget = staleness_budget_s
        self._fail_closed = fail_closed
        self._reported_healthy: bool | None = None
        self._last_reminder = -float("inf")

    def report(
        self, healthy: bool, ready: bool, now: float, waited: float, staleness: float
    ) -> None:
        """``waited``: seconds since the start; ``staleness``: seconds since last current."""
        if healthy and self._reported_healthy is False:
            log.warning("revocation listener is current again", extra={"topic": self._topic})
        elif not healthy and (ready or waited > self._budget):
            changed = self._reported_healthy is not False
            if changed or now - self._last_reminder >= REMIND_UNHEALTHY_S:
                self._last_reminder = now
                log.error(
                    self._unhealthy_text(ready, waited, staleness),
                    extra={"topic": self._topic, "staleness_s": staleness,
                           "fail_closed": self._fail_closed},
                )  # fmt: skip
        self._reported_healthy = healthy

    def _unhealthy_text(self, ready: bool, waited: float, staleness: float) -> str:
        if ready:
            state = f"is {staleness:.1f}s stale (budget {self._budget:g}s)"
        else:
            state = f"has not finished rebuilding the revocation set after {waited:.1f}s"
        mode = (
            "FAIL-CLOSED: every session is treated as revoked"
            if self._fail_closed
            else "FAIL-OPEN: revocations issued meanwhile are NOT enforced"
        )
        return f"revocation listener of {self._topic} {state}; {mode}"
