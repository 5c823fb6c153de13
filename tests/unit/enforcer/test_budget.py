"""The input budget of one transaction and the record limit that halves on failure."""

from __future__ import annotations

import base64

from confluent_kafka import Message

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import MAX_RECORD_BYTES, decode_dead_letter, encode_dict
from sessionwarden.contracts.outputs import MAX_DETAIL_CHARS
from sessionwarden.enforcer.deadletter import MAX_DEAD_LETTER_VALUE, dead_letter_doc
from sessionwarden.enforcer.engine.budget import CHECK_EVERY, InputBudget, RecordLimit
from sessionwarden.enforcer.kafka_config import producer_config
from sessionwarden.policy import MAX_SESSIONS_PER_USER, parse_policy
from tests.unit.enforcer.factories import POLICY_TOML, login, role_change
from tests.unit.enforcer.harness import Harness


def test_budget_is_spent_by_time_input_bytes_or_output_bytes() -> None:
    """Input work per transaction is bounded by each of the three, whichever comes first."""
    budget = InputBudget(time_s=0.1, input_bytes=1000, output_bytes=500)

    assert not budget.spent(0.09, 999, 499)
    assert budget.spent(0.1, 0, 0)
    assert budget.spent(0.0, 1000, 0)
    assert budget.spent(0.0, 0, 500)


def test_budget_checks_are_frequent_enough_for_the_largest_records() -> None:
    """Between two checks a transaction can overrun its budgets by CHECK_EVERY records: for
    records of the 64 KiB limit that must stay small beside the budgets themselves."""
    budget = InputBudget()

    assert CHECK_EVERY * MAX_RECORD_BYTES <= budget.input_bytes / 16
    assert CHECK_EVERY * 8 * 1024 <= budget.output_bytes / 16  # dead letters are under 8 KiB


def test_budget_is_spent_by_the_records_the_applied_records_produced() -> None:
    """Outputs and changelog records count as soon as the record that made them is applied,
    not at the next periodic check: one record that fanned out makes the next one wait."""
    budget = InputBudget(output_records=300)

    assert not budget.records_spent(299)
    assert budget.records_spent(300)


def test_one_records_largest_fan_out_is_small_beside_the_record_budget() -> None:
    """A role change ends at most max_sessions_per_user sessions (a revocation, an audit
    record and a changelog record each, plus its own audit and user records); between two
    records the budget overruns by one such record at most. And a transaction's records stay
    far below the producer's queue (queue.buffering.max.messages), fires included."""
    budget = InputBudget()
    largest = 3 * MAX_SESSIONS_PER_USER + 2
    queue = producer_config(Settings())["queue.buffering.max.messages"]

    assert largest <= budget.output_records / 16
    assert budget.output_records <= queue / 5


def test_pending_records_count_what_a_role_change_at_the_cap_made() -> None:
    """The loop charges a record with the outputs and changelog keys its apply added."""
    h = Harness(parse_policy("max_sessions_per_user = 5\n" + POLICY_TOML))
    h.feed(*[login(i, f"s{i}", user="u1") for i in range(9)])
    state = h.enforcer.state
    state.begin()
    before = state.pending_records()
    h.enforcer.apply(role_change(20, removed=("viewer",)), 1_800_000_020.0)
    made = state.pending_records() - before
    outputs, changelog = len(state.out), len(state.changelog())
    state.abort()

    assert (0, 11, 6) == (before, outputs, changelog)  # 5 x (revocation, audit) + 1 audit
    assert outputs + changelog <= made <= outputs + changelog + 1


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
