"""The changelog's bounds a restore reads up to: an invalid answer is no bound."""

from __future__ import annotations

import concurrent.futures
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaException, TopicPartition

from sessionwarden.enforcer.restore import Restorer


class Admin:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    def list_offsets(self, specs: dict[TopicPartition, Any], **_: Any) -> dict[Any, Any]:
        answered: concurrent.futures.Future[Any] = concurrent.futures.Future()
        answered.set_result(SimpleNamespace(offset=self.offset))
        return dict.fromkeys(specs, answered)


def _restorer(admin: Admin) -> Restorer:
    return Restorer(None, admin, "unit.changelog", lambda p: None)  # type: ignore[arg-type,return-value]


def test_a_valid_answer_bounds_the_restore() -> None:
    assert {0: (5, 5)} == _restorer(Admin(5))._bounds([0], timeout=0.1)


def test_an_invalid_offset_is_retried_never_taken_for_an_empty_changelog() -> None:
    """OFFSET_INVALID (a frozen broker's answer) as the end would end the restore at once
    with nothing restored: every session of the partition forgotten."""
    with pytest.raises(KafkaException):
        _restorer(Admin(-1001))._bounds([0], timeout=0.3)


def test_lookups_that_keep_failing_are_asked_of_a_new_admin_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a broker was killed, the enforcer's admin client answered OFFSET_INVALID for all
    30 s of retries while the restore held the loop; a new client answered at once."""
    monkeypatch.setattr("sessionwarden.enforcer.restore.NEW_ADMIN_AFTER_S", 0.1)
    made: list[Admin] = []

    def new_admin() -> Admin:
        made.append(Admin(7))
        return made[-1]

    stale: Any = Admin(-1001)
    restorer = Restorer(None, stale, "unit.changelog", lambda p: None, admin_factory=new_admin)  # type: ignore[arg-type,return-value]
    assert {0: (7, 7)} == restorer._bounds([0], timeout=5.0)
    assert 1 == len(made)
