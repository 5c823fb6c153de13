"""Session ids in log lines are salted hashes, never the raw identifier."""

from __future__ import annotations

import io
import logging

import orjson

from sessionwarden.ops.logs import SessionHasher, bind_process, build_formatter


def test_same_salt_gives_correlatable_hashes_and_hides_the_id() -> None:
    """Operators correlate lines across processes sharing a salt; the token never appears."""
    a, b = SessionHasher("salt-1"), SessionHasher("salt-1")
    assert a("sess-secret") == b("sess-secret")
    assert "sess-secret" not in a("sess-secret")
    assert 24 == len(a("sess-secret"))


def test_another_salt_gives_another_hash() -> None:
    """Without the salt, a hash cannot be matched against guessed session ids."""
    assert SessionHasher("salt-1")("s") != SessionHasher("salt-2")("s")
    assert SessionHasher("")("s") != SessionHasher("")("s")  # random salt per process


def _capture(fmt: str = "json") -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter(fmt))
    logger = logging.getLogger(f"test.logsetup.{fmt}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_json_line_carries_the_fields_a_query_needs() -> None:
    """Operators filter on fields (partition, reason), not on words inside the message."""
    logger, stream = _capture()
    bind_process(service="enforcer-test")
    logger.warning("dead-lettered", extra={"reason": "invalid_json", "partition": 2, "event": "x"})
    doc = orjson.loads(stream.getvalue())
    assert "dead-lettered" == doc["msg"]
    assert ("invalid_json", 2, "x") == (doc["reason"], doc["partition"], doc["event"])
    assert ("warning", "test.logsetup.json") == (doc["level"], doc["logger"])
    assert "enforcer-test" == doc["service"]
    assert doc["ts"].endswith("+00:00")


def test_an_exception_is_rendered_into_the_line() -> None:
    """A stack trace stays inside its JSON line, so a line-oriented collector keeps it whole."""
    logger, stream = _capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("internal error")
    lines = stream.getvalue().splitlines()
    assert 1 == len(lines)
    assert "ValueError: boom" in orjson.loads(lines[0])["exception"]


def test_text_format_is_key_value() -> None:
    """The text format keeps fields as key=value pairs."""
    logger, stream = _capture("text")
    logger.info("partitions revoked", extra={"partitions": [1, 2]})
    assert "partitions revoked" in stream.getvalue()
    assert "partitions=[1, 2]" in stream.getvalue()


def test_a_disabled_level_never_reaches_the_pipeline() -> None:
    """Debug calls on the hot path cost a level check, not a rendered record."""
    logger, stream = _capture()
    calls: list[logging.LogRecord] = []

    class Counting(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            calls.append(record)
            return True

    logger.handlers[0].addFilter(Counting())
    logger.debug("not shown", extra={"n": 1})
    assert [] == calls
    assert "" == stream.getvalue()


def test_error_fields_name_the_kafka_error_a_query_filters_on() -> None:
    """A Kafka error, an exception carrying one, or any other exception, as log fields."""
    from confluent_kafka import KafkaError, KafkaException

    from sessionwarden.enforcer.txn import Action, TxnFailure, cause_of
    from sessionwarden.ops.logs import error_fields

    err = KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True)
    expected = {"error": "_TIMED_OUT", "detail": "timed out", "retriable": True}
    assert expected == error_fields(err)
    assert expected == error_fields(KafkaException(err))
    failure = TxnFailure(Action.ABORT, err, "commit_transaction")
    assert expected == error_fields(failure)
    assert {"error": "ValueError", "detail": "bad"} == error_fields(ValueError("bad"))
    assert "commit_transaction: _TIMED_OUT" == cause_of(failure)
    assert "_TIMED_OUT" == cause_of(KafkaException(err))
