"""Push delivery (RFC 8935): one thread per push stream, so a slow or dead receiver holds back
only its own stream, never another stream, the Kafka reader or the enforcer.

Each thread sends its stream's due events oldest first, one HTTP POST each (the token as
``application/secevent+jwt``, the receiver's ``Authorization`` header when it gave one, no
redirects followed), and records the outcome in the store before the next: delivered, refused
(never again), or due again after a backoff. A failure stops the round (the receiver is not
taking events now) so order is kept. Wall-clock time, since retries must survive a restart.
"""

from __future__ import annotations

import functools
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from sessionwarden.outbound import DestinationRefused, exchange, reachable
from sessionwarden.ssf.transmitter.delivery import PushOutcome, backoff, push_outcome
from sessionwarden.ssf.transmitter.store import Store
from sessionwarden.ssf.transmitter.streams import Stream
from sessionwarden.ssf.vocabulary import PUSH_DELIVERY, SET_MEDIA_TYPE

log = logging.getLogger(__name__)

BATCH = 50
IDLE_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class PushOptions:
    timeout_s: float
    backoff_max_s: float


def post_set(
    stream: Stream, token: bytes, timeout_s: float, allow_private: bool = False
) -> tuple[int | None, bytes]:
    """POST one token to the stream's endpoint, ``timeout_s`` in all (a receiver that trickles
    its answer is cut off then), only to an address a push may reach (never link-local,
    unspecified or multicast; loopback and private ones only with ``allow_private``), whatever
    the endpoint's name resolves to at that moment: (status, first 4 KiB of the body), or
    (None, b"") when no answer came."""
    assert stream.endpoint_url is not None
    headers = {"Content-Type": SET_MEDIA_TYPE, "Accept": "application/json"}
    if stream.authorization_header:
        headers["Authorization"] = stream.authorization_header
    request = urllib.request.Request(stream.endpoint_url, token, headers, method="POST")
    try:
        return exchange(
            request, timeout_s=timeout_s, max_bytes=4096,
            destination=functools.partial(reachable, private=allow_private),
        )  # fmt: skip
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(4096)
    except DestinationRefused as exc:
        log.warning("push endpoint refused: %s", exc, extra={"stream_id": stream.stream_id})
        return None, b""
    except OSError:
        return None, b""


class Pusher:
    """The delivery threads, one per push stream, started and stopped as streams change."""

    def __init__(
        self,
        store: Store,
        options: PushOptions,
        clock: Callable[[], float],
        send: Callable[[Stream, bytes, float], tuple[int | None, bytes]] = post_set,
        on_outcome: Callable[[Stream, PushOutcome], None] | None = None,
    ) -> None:
        self._store = store
        self._options = options
        self._clock = clock
        self._send = send
        self._on_outcome = on_outcome
        self._wakes: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def sync(self) -> None:
        """A thread for every push stream in the store (a thread whose stream is gone or no
        longer pushed ends by itself)."""
        with self._lock:
            for stream in self._store.streams():
                if stream.method != PUSH_DELIVERY or self._stop.is_set():
                    continue
                thread = self._threads.get(stream.stream_id)
                if thread is not None and thread.is_alive():
                    continue
                wake = self._wakes.setdefault(stream.stream_id, threading.Event())
                thread = threading.Thread(
                    target=self._run,
                    args=(stream.stream_id, wake),
                    name=f"ssf-push-{stream.stream_id[:8]}",
                    daemon=True,
                )
                self._threads[stream.stream_id] = thread
                thread.start()

    def running(self) -> list[str]:
        """The streams whose delivery thread runs."""
        return sorted(k for k, t in self._threads.items() if t.is_alive())

    def wake(self, stream_id: str) -> None:
        wake = self._wakes.get(stream_id)
        if wake is not None:
            wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for wake in list(self._wakes.values()):
            wake.set()
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def _run(self, stream_id: str, wake: threading.Event) -> None:
        while not self._stop.is_set():
            stream = self._store.stream(stream_id)
            if stream is None or stream.method != PUSH_DELIVERY:
                return
            wait = self.round(stream)
            wake.wait(wait)
            wake.clear()

    def round(self, stream: Stream) -> float:
        """Send what is due; returns how long to wait before the next round."""
        if stream.status != "enabled":
            return IDLE_WAIT_S
        now = self._clock()
        for queued in self._store.due(stream.stream_id, now, BATCH):
            if self._stop.is_set():
                return 0.0
            status, body = self._send(stream, queued.token, self._options.timeout_s)
            outcome = push_outcome(status, body)
            if self._on_outcome is not None:
                self._on_outcome(stream, outcome)
            if outcome.kind == "delivered":
                self._store.settle(stream.stream_id, queued.jti, "delivered")
            elif outcome.kind == "rejected":
                self._store.settle(stream.stream_id, queued.jti, "refused", outcome.err)
                log.warning(
                    "a push receiver refused a SET: not sent again",
                    extra={"stream_id": stream.stream_id, "err": outcome.err},
                )
            else:
                attempts = queued.attempts + 1
                delay = backoff(attempts, self._options.backoff_max_s)
                self._store.retry_at(stream.stream_id, queued.jti, attempts, self._clock() + delay)
                log.info(
                    "push not taken, retrying",
                    extra={"stream_id": stream.stream_id, "why": outcome.description,
                           "attempts": attempts, "retry_in_s": delay},
                )  # fmt: skip
                return delay
        nxt = self._store.next_due(stream.stream_id)
        if nxt is None:
            return IDLE_WAIT_S
        return max(0.0, min(IDLE_WAIT_S, nxt - self._clock()))
