"""The agent's per-event shell with a fake alert topic: order of effects, poison, logging."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from sessionwarden.contracts.codec import encode
from sessionwarden.detect.app import DetectShell
from sessionwarden.detect.engine import Engine
from tests.unit.detect.factories import T0, ended_used, policy


class FakeAlertTopic:
    """Records each alert with the size of the state table at send time."""

    def __init__(self, users: dict[Any, bytes]) -> None:
        self.users = users
        self.sent: list[tuple[bytes, bytes, int]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value, len(self.users)))
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


def event(value: bytes | None, offset: int) -> Any:
    return SimpleNamespace(
        value=value,
        message=SimpleNamespace(topic="t.sessionwarden.audit", partition=1, offset=offset),
    )


def run(values: list[bytes | None]) -> tuple[DetectShell, FakeAlertTopic]:
    users: dict[Any, bytes] = {}
    topic = FakeAlertTopic(users)
    shell = DetectShell(Engine(policy()), users, topic, salt="unit-salt")

    async def feed() -> None:
        for offset, value in enumerate(values):
            await shell.handle(event(value, offset))

    asyncio.run(feed())
    return shell, topic


def test_undecodable_records_are_skipped_and_the_next_one_is_processed() -> None:
    """A poison record on the audit stream must never stop detection."""
    good = encode(ended_used("alice", "sess-secret", T0))
    shell, topic = run([b"\xff\xfe", b'{"type": "teleport"}', None, good])
    assert (4, 3, 1) == (shell.events, shell.skipped, shell.emitted)
    assert [b"alice"] == [key for key, _, _ in topic.sent]


def test_an_alert_is_delivered_before_the_state_that_records_it_is_written() -> None:
    """Otherwise a crash between the two could lose the alert for good."""
    _, topic = run([encode(ended_used("alice", "sess-1", T0))])
    assert [0] == [cooldowns_at_send for _, _, cooldowns_at_send in topic.sent]


def test_log_lines_carry_hashed_session_ids_never_raw_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Session ids are bearer secrets in many systems; logs are widely readable."""
    caplog.set_level(logging.INFO)
    shell, _ = run([encode(ended_used("alice", "sess-secret-42", T0))])
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "sess-secret-42" not in text
    assert shell.session_hash("sess-secret-42") in text


def test_a_user_whose_state_cannot_be_read_is_skipped_and_the_others_judged() -> None:
    """A document the worker cannot read costs that user's records, never the worker."""
    users: dict[Any, bytes] = {("acme", "alice"): b"{not json"}
    topic = FakeAlertTopic(users)
    shell = DetectShell(Engine(policy()), users, topic, salt="unit-salt")
    records = [encode(ended_used("alice", "s-1", T0)), encode(ended_used("bob", "s-2", T0))]

    async def feed() -> None:
        await shell.handle_batch([event(value, offset) for offset, value in enumerate(records)])

    asyncio.run(feed())
    assert (2, 1, 1) == (shell.events, shell.skipped, shell.emitted)
    assert [b"bob"] == [key for key, _, _ in topic.sent]
