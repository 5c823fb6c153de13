"""With CAEP on, the enforcer publishes Security Event Tokens beside its own records."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.caep import SESSION_ESTABLISHED, SESSION_REVOKED, read_unverified
from streams.publisher import AuthEventPublisher
from streams.settings import Settings
from tests.integration.harness import EnforcerProcess, login_doc, logout_doc, wait_until


def test_login_and_logout_become_session_established_and_session_revoked(
    settings_factory: Callable[..., Settings],
) -> None:
    """Receivers of the Shared Signals stream learn of the session and of its end."""
    settings = settings_factory()
    proc = EnforcerProcess(
        settings,
        SESSIONWARDEN_CAEP_ENABLED="true",
        SESSIONWARDEN_CAEP_ISSUER="https://sessionwarden.example",
        SESSIONWARDEN_CAEP_AUDIENCES="https://rp.example",
    )
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.topic_prefix}caep",
            "isolation.level": "read_committed",
            "log_level": 3,
        }
    )
    tokens: list[tuple[dict, dict]] = []
    try:
        proc.wait_assigned()
        now = time.time()
        with AuthEventPublisher(settings.bootstrap_servers, settings.topics.input) as pub:
            pub.publish(login_doc("caep-1", "caep-user", now, risk="low"))
            pub.publish(logout_doc("caep-1", "caep-user", now + 0.5))
        consumer.assign(
            [TopicPartition(settings.topics.caep, p, OFFSET_BEGINNING) for p in range(3)]
        )

        def two_tokens() -> bool:
            for msg in consumer.consume(100, 0.2):
                if msg.error() is None:
                    tokens.append(read_unverified(msg.value()))
            return len(tokens) >= 2

        wait_until(two_tokens, 20, "two CAEP tokens")
    finally:
        consumer.close()
        proc.stop()
    events = [next(iter(claims["events"])) for _, claims in tokens]
    assert [SESSION_ESTABLISHED, SESSION_REVOKED] == events
    for header, claims in tokens:
        assert "secevent+jwt" == header["typ"]
        assert ("https://sessionwarden.example", "https://rp.example") == (
            claims["iss"],
            claims["aud"],
        )
        assert "sub" not in claims and "exp" not in claims
        assert 1 == len(claims["events"])
    revoked = tokens[1][1]["events"][SESSION_REVOKED]
    assert "user" == revoked["initiating_entity"]
