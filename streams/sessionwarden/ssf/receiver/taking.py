"""Taking one SET, shared by the push endpoint and the poller: decide, publish, settle, count.

The decision is :meth:`Intake.receive`, run on the transmitter's own thread of ``lanes`` when
given (a transmitter's JWKS fetch must stall neither the event loop nor another transmitter's
SETs: :mod:`sessionwarden.ssf.receiver.lanes`), inline otherwise (the unit tests of the
decisions alone); an accepted event is published with the product's
publisher (awaited until the broker acknowledged it) before its jti is remembered, so a SET
is never remembered without its event, nor its event published twice for one delivery.
Every outcome is counted in :class:`ReceiverMetrics` afterwards and refusals are logged (the
transmitter, the code and the description; never the token).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sessionwarden.contracts.inputs import AuthEvent
from sessionwarden.ssf.receiver.intake import Accepted, Intake, Replayed
from sessionwarden.ssf.receiver.lanes import Lanes
from sessionwarden.ssf.receiver.metrics import ReceiverMetrics
from sessionwarden.ssf.receiver.refusal import Refused, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
Publish = Callable[[AuthEvent], Awaitable[object]]


@dataclass(frozen=True)
class Receiving:
    """What taking a SET needs: the decisions, the publisher, the counters, the clock, and
    the transmitters' lanes the decisions run on."""

    intake: Intake
    publish: Publish
    metrics: ReceiverMetrics
    clock: Callable[[], float]
    lanes: Lanes | None = None


async def on_lane(
    ctx: Receiving, transmitter: str, call: Callable[..., T], *args: object, bounded: bool = True
) -> T:
    """``call(*args)`` on the transmitter's lane (inline without lanes)."""
    if ctx.lanes is None:
        return call(*args)
    return await ctx.lanes.run(transmitter, call, *args, bounded=bounded)


async def take(ctx: Receiving, transmitter: str, token: str) -> str:
    """``accepted`` or ``ignored``; raises :class:`Refused` (counted, logged) or
    :class:`Unavailable`."""
    try:
        outcome = await on_lane(
            ctx, transmitter, ctx.intake.receive, transmitter, token, ctx.clock()
        )
    except Refused as refused:
        if not isinstance(refused, Replayed):
            ctx.metrics.outcome(transmitter, "refused", refused.code)
        log.info(
            "SET refused",
            extra={"transmitter": transmitter, "code": refused.code,
                   "description": refused.description},
        )  # fmt: skip
        raise
    except Unavailable as exc:
        ctx.metrics.outcome(transmitter, "unavailable")
        log.warning("SET not taken now", extra={"transmitter": transmitter, "reason": str(exc)})
        raise
    if not isinstance(outcome, Accepted):
        ctx.metrics.outcome(transmitter, "ignored")
        return "ignored"
    try:
        await ctx.publish(outcome.event)
    except Exception as exc:
        await on_lane(ctx, transmitter, ctx.intake.settle, outcome.key, False, bounded=False)
        ctx.metrics.outcome(transmitter, "unavailable")
        log.warning("SET's event not published", extra={"transmitter": transmitter,
                                                        "error": str(exc)[:200]})  # fmt: skip
        raise Unavailable("the event could not be published") from exc
    await on_lane(ctx, transmitter, ctx.intake.settle, outcome.key, True, bounded=False)
    ctx.metrics.outcome(transmitter, "accepted")
    log.info(
        "SET accepted",
        extra={"transmitter": transmitter, "type": outcome.event.type,
               "tenant": outcome.event.tenant},
    )  # fmt: skip
    return "accepted"
