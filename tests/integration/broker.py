"""Where the integration tests' broker comes from.

1. ``KAFKA_BOOTSTRAP_SERVERS`` set: that cluster, nothing started.
2. ``SESSIONWARDEN_TEST_BROKER=testcontainers``: the official apache/kafka image through
   testcontainers (needs a Docker engine; the tests skip with the reason where none answers).
3. Otherwise the local broker that ``infra/kafka/broker.py`` runs (started here if it is down).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KAFKA_IMAGE = "apache/kafka:4.1.1"


def _docker_answers() -> str | None:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    return None


@contextmanager
def _testcontainers_broker() -> Iterator[str]:
    try:
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("SESSIONWARDEN_TEST_BROKER=testcontainers needs `pip install -e '.[docker]'`")
    reason = _docker_answers()
    if reason:
        pytest.skip(f"SESSIONWARDEN_TEST_BROKER=testcontainers: {reason}")
    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@contextmanager
def broker_bootstrap() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if os.environ.get("SESSIONWARDEN_TEST_BROKER") == "testcontainers":
        with _testcontainers_broker() as servers:
            yield servers
        return
    up = subprocess.run([sys.executable, str(REPO / "infra/kafka/broker.py"), "up"])
    if up.returncode != 0:
        pytest.fail("the local Kafka broker could not be started (see the output above)")
    yield f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
