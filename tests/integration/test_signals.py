"""Identity signals through the enforcer on the real broker: revocations and audit records."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from sessionwarden.config.settings import Settings
from sessionwarden.contracts.codec import decode_audit_event, decode_revocation_record, encode_dict
from sessionwarden.contracts.outputs import Revocation, SessionEnded, SessionRiskChanged
from sessionwarden.sdk.publisher import AuthEventPublisher
from sessionwarden.testing.events import (
    risk_change_doc,
    session_revoked_doc,
    user_revoked_doc,
)
from tests.integration.harness import Collector, EnforcerProcess, login_doc, parse_ts, wait_until


def test_signals_revoke_and_tighten_sessions(settings_factory: Callable[..., Settings]) -> None:
    """session_revoked ends one session, user_revoked the rest of the user's, both as
    ``signal`` with the signal and source audited; risk_change moves an idle deadline from 6 s
    to 3 s and audits it. Another user's session is not touched."""
    settings = settings_factory()
    proc = EnforcerProcess(settings)
    servers, topics = settings.kafka.bootstrap_servers, settings.topics
    revocations = Collector(servers, topics.revocations)
    audit = Collector(servers, topics.audit)
    try:
        proc.wait_assigned()
        now = time.time()
        signal = session_revoked_doc("a", "u-sig", now + 0.2, source="keycloak:main")
        with AuthEventPublisher(servers, topics.input) as pub:
            for sid, user in (("a", "u-sig"), ("b", "u-sig"), ("c", "u-risk"), ("x", "u-x")):
                pub.publish(login_doc(sid, user, now, risk="low"))  # idle 6 s, absolute 8 s
            pub.publish(signal)
            pub.publish(user_revoked_doc("u-sig", now + 0.4, "account_disabled"))
            pub.publish(risk_change_doc("u-risk", now + 0.5, "medium"))  # defaults: idle 3 s
        docs = wait_until(lambda: _at_least(3, revocations.docs()), 10, "three revocations")
        ends = wait_until(
            lambda: _at_least(3, audit.docs(type="session_ended")), 5, "3 session_ended records"
        )
        [risk] = audit.docs(type="session_risk_changed")
    finally:
        revocations.close()
        audit.close()
        proc.stop()
    records = [decode_revocation_record(encode_dict(d)) for d in docs]
    by_session = {r.session_id: r for r in records if isinstance(r, Revocation)}
    assert ["a", "b", "c"] == sorted(by_session)
    got = {
        sid: (r.reason, round(r.effective_at.timestamp() - now, 2)) for sid, r in by_session.items()
    }
    assert {"a": ("signal", 0.2), "b": ("signal", 0.4), "c": ("idle_timeout", 3.0)} == got
    assert signal["event_id"] == str(by_session["a"].cause_event_id)
    ended = {e.session_id: e for e in map(_audit, ends) if isinstance(e, SessionEnded)}
    assert ("session_revoked", "keycloak:main") == (ended["a"].signal, ended["a"].source)
    assert ("account_disabled", "ssf:test") == (ended["b"].signal, ended["b"].source)
    assert (None, None) == (ended["c"].signal, ended["c"].source)
    changed = _audit(risk)
    assert isinstance(changed, SessionRiskChanged)
    assert ("c", "low", "medium", 6.0, 3.0) == (
        changed.session_id,
        changed.risk_profile_before,
        changed.risk_profile,
        changed.idle_timeout_before_s,
        changed.idle_timeout_s,
    )
    assert pytest.approx(now + 0.5, abs=0.01) == parse_ts(risk["occurred_at"])


def _at_least(count: int, docs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return docs if len(docs) >= count else None


def _audit(doc: dict[str, object]) -> object:
    return decode_audit_event(encode_dict(doc))
