"""One lane per transmitter: the thread its SETs are decided on, and a bound on its queue.

A decision may block: verifying a SET may fetch its transmitter's JWKS (up to the fetch's
deadline, and again whenever a SET names a key id the cached keys lack), and a poll waits for
its transmitter's answer. Run on one thread shared by every transmitter, one transmitter with
a slow JWKS endpoint held every other transmitter's SETs behind its fetches. Each transmitter
has its own thread, so its trouble delays only its own SETs; what the lanes share (the jti
store) is behind its own lock and never held across a fetch.

At most ``depth`` of a transmitter's SETs wait for its lane; another is :class:`Unavailable`
at once (the transmitter sends it again), so a transmitter pushing faster than its lane
drains holds no more than that many requests open in the receiver. The counts are kept on the
event loop, the only caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

from sessionwarden.ssf.receiver.refusal import Unavailable

T = TypeVar("T")

DEPTH: Final = 64
"""A transmitter's SETs waiting for its lane, at most."""


class Lanes:
    """A thread per transmitter name."""

    def __init__(self, transmitters: Iterable[str], depth: int = DEPTH) -> None:
        self.depth = depth
        self._pools = {
            name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sessionwarden-ssf-{name}")
            for name in transmitters
        }
        self._waiting = dict.fromkeys(self._pools, 0)

    async def run(
        self, transmitter: str, call: Callable[..., T], *args: object, bounded: bool = True
    ) -> T:
        """``call(*args)`` on the transmitter's thread. ``bounded``: counted against its depth
        (a SET to decide); a step of one already taken (settling it) is never refused."""
        waiting = self._waiting[transmitter]
        if bounded and waiting >= self.depth:
            raise Unavailable(f"transmitter {transmitter} has {self.depth} SETs waiting")
        self._waiting[transmitter] = waiting + 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pools[transmitter], call, *args)
        finally:
            self._waiting[transmitter] -= 1

    def close(self) -> None:
        """Stop taking work; what waits is dropped, what runs finishes on its own."""
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
