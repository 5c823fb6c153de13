"""`sessionwarden drill` end to end at a small size: it passes on the full stack, and each
deliberate weakening of one layer (a route outside the middleware, the sink not started, the
page without its script) is caught as a bypass on that layer only, with exit status 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.browser.harness import chromium_expected, require_chromium
from tests.integration.harness import REPO

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def drill(out: Path, pg_admin_dsn: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """The CLI at a small size (2 s tolerance: a loaded machine must not fail the judging;
    the speed itself is what `make drill` reports), without the mass revocation unless asked."""
    mass = () if "--mass-sessions" in args else ("--mass-sessions", "0")
    proc = subprocess.run(
        [sys.executable, "-m", "sessionwarden", "drill", "--out", str(out),
         "--pg-admin-dsn", pg_admin_dsn, "--rate", "4", "--tolerance", "2", *mass, *args],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    report = out / "drill.json"
    assert report.exists(), proc.stdout + proc.stderr
    return proc.returncode, orjson.loads(report.read_bytes()), proc.stdout + proc.stderr


def bypasses(doc: dict[str, Any]) -> dict[str, int]:
    return {name: row["bypasses"] for name, row in doc["cases"].items()}


def test_full_stack_passes_every_case(tmp_path: Path, pg_admin_dsn: str) -> None:
    browser = 1 if chromium_expected() else 0
    code, doc, text = drill(tmp_path, pg_admin_dsn, "--sessions", "4", "--pg-sessions", "2",
                            "--browser-sessions", str(browser))  # fmt: skip
    assert code == 0, text
    assert doc["passed"] and doc["bypasses"] == doc["false_cutoffs"] == doc["unproven"] == 0
    pages = {"browser-tab", "browser-second-tab"} if browser else set()
    expected = {"http-api", "http-page", "websocket", "second-service", "listener-outage",
                "pg-kept-connection", "pg-transaction"} | pages  # fmt: skip
    assert set(doc["cases"]) == expected
    for name, row in doc["cases"].items():
        assert row["sessions"] > 0 and row["attempts"] > row["sessions"], name
    layers = {s["layer"] for s in doc["stats"]}
    assert layers == {"http", "websocket", "postgres"} | ({"browser"} if browser else set())
    assert "PASS: 0 bypass(es)" in text
    assert (tmp_path / "drill.png").read_bytes()[:4] == b"\x89PNG"
    closes = doc["websocket_close"]
    print(f"\nWebSocket close after the revocation was read: {closes}")
    assert closes["count"] == 4, "every session's socket was closed for its revocation"
    # The close follows the revocation event, not the 0.5 s backstop poll (the target is
    # p99 <= 100 ms; 2.5 times that on a loaded test machine, half the poll interval).
    assert closes["p99_ms"] <= 250, closes
    assert "WebSocket close after the revocation was read" in text


def test_a_route_outside_the_middleware_and_no_ssf_transmitter_are_bypasses(
    tmp_path: Path, pg_admin_dsn: str
) -> None:
    """Two weakenings in one run, each caught on its own layer only: a route outside the
    middleware (http-api) and the SSF transmitter not run (both relying parties serve on)."""
    code, doc, text = drill(tmp_path, pg_admin_dsn, "--sessions", "3", "--pg-sessions", "0",
                            "--browser-sessions", "0", "--unprotected", "/api/data",
                            "--no-ssf-transmitter")  # fmt: skip
    assert code == 1, text
    found = bypasses(doc)
    assert found["http-api"] > 0
    assert found["ssf-push"] > 0 and found["ssf-poll"] > 0
    assert found["http-page"] == found["websocket"] == found["second-service"] == 0
    assert found["listener-outage"] == 0
    for case in ("http-api", "ssf-push", "ssf-poll"):
        assert doc["cases"][case]["false_cutoffs"] == 0, case
    assert "BYPASS" in text and "http-api" in text and "ssf-push" in text


def test_the_sink_stopped_is_a_bypass(tmp_path: Path, pg_admin_dsn: str) -> None:
    code, doc, text = drill(tmp_path, pg_admin_dsn, "--sessions", "2", "--pg-sessions", "2",
                            "--browser-sessions", "0", "--no-sink")  # fmt: skip
    assert code == 1, text
    found = bypasses(doc)
    assert found["pg-kept-connection"] > 0 and found["pg-transaction"] > 0
    assert found["http-api"] == found["websocket"] == 0


@pytest.mark.browser
def test_the_page_without_its_script_is_a_bypass(tmp_path: Path, pg_admin_dsn: str) -> None:
    require_chromium()
    code, doc, text = drill(tmp_path, pg_admin_dsn, "--sessions", "2", "--pg-sessions", "0",
                            "--browser-sessions", "1", "--no-page-script")  # fmt: skip
    assert code == 1, text
    found = bypasses(doc)
    assert found["browser-tab"] > 0 and found["browser-second-tab"] > 0
    assert found["http-api"] == found["http-page"] == 0


def test_the_gateway_case_passes_behind_nginx(tmp_path: Path, pg_admin_dsn: str) -> None:
    """`--gateway --ssf`: the sessions also go through nginx asking `sessionwarden gate`, in
    front of an upstream with no Sessionwarden code, and through two relying parties told only
    by the SSF transmitter (pushed to, polling); every one is refused there from its deadline
    on.
    Then the mass revocation (held: over 1,000 sessions per partition) is timed at the API,
    database and gateway layers, and its line is in the report."""
    code, doc, text = drill(tmp_path, pg_admin_dsn, "--sessions", "3", "--pg-sessions", "1",
                            "--browser-sessions", "0", "--gateway", "--ssf",
                            "--mass-sessions", "7000")  # fmt: skip
    assert code == 0, text
    for case in ("gateway", "ssf-push", "ssf-poll"):
        row = doc["cases"][case]
        assert (3, 0, 0, 0) == (row["sessions"], row["bypasses"], row["false_cutoffs"],
                                row["unproven"]), case  # fmt: skip
    assert {"gateway", "ssf"} <= {s["layer"] for s in doc["stats"]}
    ssf = [s for s in doc["stats"] if s["layer"] == "ssf"]
    print(f"\nSSF relying parties, refusal after the deadline: {ssf}")
    mass = doc["mass_revocation"]
    assert (7000, 7000, True) == (mass["sessions"], mass["revoked"], mass["held"]), text
    assert ["API", "database", "gateway"] == sorted(mass["refused_after_commit_s"])
    assert all(s is not None for s in mass["refused_after_commit_s"].values()), mass["line"]
    assert mass["line"] in (tmp_path / "drill.txt").read_text()


def test_a_path_nginx_serves_without_the_gate_is_a_bypass(
    tmp_path: Path, pg_admin_dsn: str
) -> None:
    """The weakening of the gateway layer is caught there, and only there."""
    code, doc, text = drill(tmp_path, pg_admin_dsn, "--sessions", "3", "--pg-sessions", "0",
                            "--browser-sessions", "0",
                            "--gateway-unprotected", "/api/data")  # fmt: skip
    assert code == 1, text
    found = bypasses(doc)
    assert found["gateway"] > 0
    assert found["http-api"] == found["http-page"] == found["websocket"] == 0
    assert "BYPASS" in text and "gateway" in text
