"""`sessionwarden sessions`: hashed ids by default, raw ids only when the settings allow them,
and a clear line when nothing is live."""

from __future__ import annotations

import io

import orjson
import pytest

from sessionwarden.cli.main import main
from sessionwarden.cli.sessions import RawIdsRefused, render, sessions
from sessionwarden.config.settings import load_settings
from sessionwarden.enforcer.engine.live import Listing, LiveSession
from sessionwarden.ops.logs import SessionHasher

T0 = 1_800_000_000.0
LIVE = LiveSession(
    tenant="acme",
    session_id="raw-secret-sid",
    user_id="u1",
    user_type="customer",
    risk_profile="low",
    started_at=T0,
    last_activity=T0 + 30,
    idle_deadline=T0 + 130,
    absolute_deadline=T0 + 1000,
    ends_at=T0 + 130,
    ends_by="idle_timeout",
    partition=0,
)


def _render(listing: Listing, as_json: bool, raw: bool = False) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    show = str if raw else SessionHasher("salt")
    render(listing, "acme", None, show, raw, as_json, T0 + 10, out, err)
    return out.getvalue(), err.getvalue()


def test_session_ids_are_printed_as_the_logs_salted_hash_by_default() -> None:
    """A listing pasted into a ticket must not hand out a live credential."""
    text, _ = _render(Listing([LIVE], 0, 0), as_json=False)
    (line,) = _render(Listing([LIVE], 0, 0), as_json=True)[0].splitlines()

    assert "raw-secret-sid" not in text
    assert SessionHasher("salt")("raw-secret-sid") in text
    assert "idle_timeout in 2m00s" in text
    assert {
        "tenant": "acme",
        "session_hash": SessionHasher("salt")("raw-secret-sid"),
        "user_id": "u1",
        "user_type": "customer",
        "risk_profile": "low",
        "started_at": "2027-01-15T08:00:00Z",
        "last_activity": "2027-01-15T08:00:30Z",
        "idle_deadline": "2027-01-15T08:02:10Z",
        "absolute_deadline": "2027-01-15T08:16:40Z",
        "ends_at": "2027-01-15T08:02:10Z",
        "ends_by": "idle_timeout",
    } == orjson.loads(line)


def test_no_live_sessions_is_said_in_one_line() -> None:
    """An unknown tenant or user is not an error: nothing is live for it."""
    assert ("no live sessions for tenant acme\n", "") == _render(Listing([], 0, 0), False)
    assert ("", "no live sessions for tenant acme (3 ended sessions remembered)\n") == _render(
        Listing([], 3, 0), True
    )


def test_raw_ids_are_refused_unless_the_settings_allow_them() -> None:
    """The permission is the deployment's, not the caller's flag alone."""
    settings = load_settings(bootstrap_servers="127.0.0.1:1", log_salt="salt")

    with pytest.raises(RawIdsRefused, match="sessions_allow_raw_ids"):
        sessions(settings, "acme", None, False, True, 1.0, io.StringIO(), io.StringIO())


def test_the_command_exits_2_with_one_line_when_raw_ids_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal happens before any broker is asked."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SESSIONWARDEN_SESSIONS_ALLOW_RAW_IDS", "false")

    code = main(["sessions", "--tenant", "acme", "--raw-ids"])

    assert 2 == code
    assert capsys.readouterr().err.startswith("sessionwarden: --raw-ids needs the setting")


def test_the_raw_ids_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SESSIONWARDEN_SESSIONS_ALLOW_RAW_IDS is the documented switch; it is off by default."""
    assert False is load_settings().logging.allow_raw_session_ids
    monkeypatch.setenv("SESSIONWARDEN_SESSIONS_ALLOW_RAW_IDS", "true")
    assert True is load_settings().logging.allow_raw_session_ids


def test_a_deadline_already_passed_is_shown_overdue() -> None:
    """The enforcer runs on event time: a session can outlive its deadline for a while."""
    out, err = io.StringIO(), io.StringIO()

    render(Listing([LIVE], 0, 0), "acme", "u1", str, True, False, T0 + 200, out, err)

    assert out.getvalue().startswith("1 live sessions for user u1 of tenant acme\nSESSION ")
    assert [
        "raw-secret-sid", "u1", "2027-01-15T08:00:00Z", "2027-01-15T08:00:30Z",
        "2027-01-15T08:02:10Z", "2027-01-15T08:16:40Z", "idle_timeout", "overdue", "1m10s",
    ] == out.getvalue().splitlines()[-1].split()  # fmt: skip
