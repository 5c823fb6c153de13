"""`sessionwarden tail` renders the records of identity signals in one readable line each."""

from __future__ import annotations

import orjson

from sessionwarden.audit.records import render
from sessionwarden.contracts.codec import encode
from sessionwarden.contracts.outputs import SessionEnded
from tests.unit.sdk.fakes import at, session_risk_changed


def test_a_session_ended_on_a_signal_names_the_signal_and_its_source() -> None:
    record = SessionEnded(
        event_id="5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",  # type: ignore[arg-type]
        occurred_at=at(60),
        user_id="alice",
        tenant="acme",
        session_id="s-1",
        reason="signal",
        started_at=at(0),
        ended_at=at(60),
        duration_s=60.0,
        signal="account_disabled",
        source="keycloak:main",
    )
    line = render(orjson.loads(encode(record)))
    assert "END         signal" in line
    assert line.endswith("after 60.0s signal=account_disabled source=keycloak:main")


def test_a_risk_change_shows_both_profiles_and_the_new_timeouts() -> None:
    line = render(orjson.loads(encode(session_risk_changed("s-2", 0))))
    assert "RISK        medium->high session=s-2 user=user-of-s-2 idle=300s until " in line
    assert not line.endswith("ENDED")
