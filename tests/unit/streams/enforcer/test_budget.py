"""The input budget of one transaction and the record limit that halves on failure."""

from __future__ import annotations

import base64

from confluent_kafka import Message

from schemas.codec import decode_dead_letter, encode_dict
from schemas.outputs import MAX_DETAIL_CHARS
from streams.enforcer.budget import InputBudget, RecordLimit
from streams.enforcer.deadletter import MAX_DEAD_LETTER_VALUE, dead_letter_doc


def test_first_record_is_always_taken_even_when_it_alone_is_over_budget() -> None:
    """Every transaction makes progress, or a single huge record would stall the input."""
    budget = InputBudget(time_s=0.25, input_bytes=1000)
    budget.start(100.0, limit=10)

    assert not budget.spent(500.0)
    budget.take(5000)
    assert budget.spent(100.0)


def test_budget_is_spent_by_time_bytes_or_count() -> None:
    """Work per transaction is bounded by each of the four, whichever comes first."""
    budgets = [InputBudget(0.25, 1000, 1000) for _ in range(4)]
    by_time, by_input, by_output, by_count = budgets
    for budget in budgets:
        budget.start(100.0, limit=2)
        budget.take(10)
    assert [False] * 4 == [b.spent(100.1) for b in budgets]

    by_input.take(990)
    by_output.produced(1000)
    by_count.take(10)

    assert [True] * 4 == [
        by_time.spent(100.25),
        by_input.spent(100.1),
        by_output.spent(100.1),
        by_count.spent(100.1),
    ]


def test_time_budget_stays_well_short_of_the_transaction_timeout() -> None:
    """A transaction's input work must leave most of the timeout for produce and commit."""
    assert 0.1 == InputBudget.for_timeout(10.0).time_s
    assert 0.05 == InputBudget.for_timeout(0.5).time_s


def test_record_limit_halves_to_one_and_recovers() -> None:
    """A batch that cannot commit is split until its offending record is alone."""
    limit = RecordLimit(5000)
    steps = []
    while not limit.alone:
        limit.failed()
        steps.append(limit.current)
    limit.failed()

    assert [2500, 1250, 625, 312, 156, 78, 39, 19, 9, 4, 2, 1] == steps
    assert 1 == limit.current
    for _ in range(20):
        limit.committed()
    assert 5000 == limit.current


class FakeMessage:
    def __init__(self, key: bytes | None, value: bytes) -> None:
        self._key, self._value = key, value

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "auth.events"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41


def letter(key: bytes | None, value: bytes, detail: str = "x: bad", keep: bool = True) -> dict:
    msg: Message = FakeMessage(key, value)  # type: ignore[assignment]
    return dead_letter_doc("schema_violation", detail, msg, 1767322245.0, keep)


def test_dead_letter_of_a_large_record_is_capped_with_hash_and_marker() -> None:
    """A 64 KB hostile record made an 87 KB dead letter; now its head, size and hash."""
    value = b"{" + b"x" * 65_000 + b"}"

    doc = letter(b"u-1", value, detail="k: Extra inputs are not permitted")
    wire = encode_dict(doc)

    assert len(wire) < 8 * 1024
    assert value[:MAX_DEAD_LETTER_VALUE] == base64.b64decode(doc["value_b64"])
    assert doc["detail"].startswith("k: Extra inputs are not permitted [value truncated: 65002 ")
    assert "sha256 " in doc["detail"]
    assert "schema_violation" == decode_dead_letter(wire).reason


def test_dead_letter_marker_survives_a_maximal_detail() -> None:
    """The reason's detail is cut to make room; the marker that says bytes are missing stays."""
    doc = letter(b"k" * 5000, b"v" * 10_000, detail="d" * 5000)

    assert MAX_DETAIL_CHARS >= len(doc["detail"])
    assert "[value truncated: 10000 bytes" in doc["detail"]
    assert "[key truncated: 5000 bytes" in doc["detail"]
    assert doc["detail"].startswith("ddd")


def test_small_record_is_kept_whole_and_bare_letters_keep_only_hashes() -> None:
    whole = letter(b"u-1", b'{"a":1}')
    bare = letter(b"u-1", b'{"a":1}', keep=False)

    assert b'{"a":1}' == base64.b64decode(whole["value_b64"])
    assert "x: bad" == whole["detail"]
    assert "" == bare["value_b64"]
    assert "[value truncated: 7 bytes" in bare["detail"]
