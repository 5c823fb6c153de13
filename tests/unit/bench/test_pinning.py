"""Pinning the broker and the system measured to separate cores (bench/pinning.py)."""

from __future__ import annotations

import os
import socket

from bench.pinning import listener_pid, pinned


def test_the_listener_of_a_port_is_found_and_a_free_port_has_none() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listener_pid(port) == os.getpid()
    assert listener_pid(port) is None


def test_pinning_confines_this_process_and_gives_every_core_back() -> None:
    before = os.sched_getaffinity(0)
    with socket.socket() as server:  # this process stands in for the broker
        server.bind(("127.0.0.1", 0))
        server.listen()
        with pinned(server.getsockname()[1]) as how:
            inside = os.sched_getaffinity(0)
    assert os.sched_getaffinity(0) == before
    if len(before) < 2:
        assert how.startswith("not pinned")
    else:  # this process is broker and driver at once: the driver's pin, set last, holds
        assert how.startswith("pinned") and inside == {sorted(before)[1]}


def test_without_a_broker_to_pin_nothing_is_pinned() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening
    with pinned(port) as how:
        assert os.sched_getaffinity(0) == os.sched_getaffinity(os.getpid())
    assert how == "not pinned (the broker's process was not found)"
