"""One lane per transmitter: a transmitter whose keys take long to fetch delays only its own
SETs, never another transmitter's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from sessionwarden.ssf.receiver.lanes import Lanes
from sessionwarden.ssf.receiver.refusal import Unavailable
from sessionwarden.ssf.receiver.taking import take
from tests.unit.gate.tokens import jwks
from tests.unit.ssf.receiver.sets import FakePublisher, claims, receiving, set_token, trust

T = TypeVar("T")
BOUND_S = 2.0
"""Far beyond the milliseconds a SET takes, far below the hung fetch it must not wait for."""


class HungKeys:
    """A JWKS fetch that blocks until released, as an endpoint that trickles its answer."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> bytes:
        self.entered.set()
        self.release.wait(30)
        return jwks()


@pytest.fixture
def hung() -> Iterator[HungKeys]:
    keys = HungKeys()
    yield keys
    keys.release.set()


def two_lanes(publisher: FakePublisher, hung: HungKeys, depth: int = 8) -> tuple[Any, Lanes]:
    lanes = Lanes(["slow", "fast"], depth)
    ctx = receiving(
        publisher, lanes=lanes, slow=trust("slow", keys=hung), fast=trust("fast", tenant="acme")
    )
    return ctx, lanes


async def _while_hung(
    hung: HungKeys, started: Callable[[], Awaitable[str]], then: Callable[[], Awaitable[T]]
) -> T:
    """Start ``started`` (it blocks in the hung fetch), then await ``then`` within the bound."""
    first = asyncio.ensure_future(started())
    await asyncio.to_thread(hung.entered.wait, BOUND_S)
    assert hung.entered.is_set()
    try:
        return await asyncio.wait_for(then(), BOUND_S)
    finally:
        hung.release.set()
        await first


def test_a_transmitter_whose_keys_hang_does_not_hold_another_transmitters_sets(
    hung: HungKeys,
) -> None:
    """The decisions ran on one thread for all: a fetch of one transmitter's keys (up to its
    deadline, again for each unknown key id) held every other transmitter's SETs."""
    publisher = FakePublisher()
    ctx, lanes = two_lanes(publisher, hung)
    try:
        outcome = asyncio.run(
            _while_hung(
                hung,
                lambda: take(ctx, "slow", set_token(claims(jti="slow-1"))),
                lambda: take(ctx, "fast", set_token(claims(jti="fast-1"))),
            )
        )
    finally:
        lanes.close()
    assert "accepted" == outcome
    assert ["ssf:fast", "ssf:slow"] == [e.source for e in publisher.events]


def test_a_transmitter_with_its_lane_full_is_unavailable_at_once_and_others_are_taken(
    hung: HungKeys,
) -> None:
    """Its SETs beyond the lane's depth are answered 503 (sent again later), not queued."""
    publisher = FakePublisher()
    ctx, lanes = two_lanes(publisher, hung, depth=1)

    async def scenario() -> tuple[str, str]:
        async def refused() -> str:
            try:
                await take(ctx, "slow", set_token(claims(jti="slow-2")))
            except Unavailable:
                return "unavailable"
            return "taken"

        second = await asyncio.wait_for(refused(), BOUND_S)
        other = await take(ctx, "fast", set_token(claims(jti="fast-2")))
        return second, other

    try:
        outcome = asyncio.run(
            _while_hung(
                hung,
                lambda: take(ctx, "slow", set_token(claims(jti="slow-1"))),
                scenario,
            )
        )
    finally:
        lanes.close()
    assert ("unavailable", "accepted") == outcome
