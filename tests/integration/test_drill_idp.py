"""`sessionwarden drill --idp-sessions`: Keycloak's sessions pass the idp layer (refresh
refused, introspection inactive, back-channel logout received, each within the tolerance of
the deadline), and without the actuator (`--no-idp-actuator`) every idp case shows bypasses
while the other layers still pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from sessionwarden.testing.keycloak import ADMIN_USER
from tests.integration.conftest import KeycloakHarness
from tests.integration.harness import REPO

pytestmark = [pytest.mark.integration, pytest.mark.keycloak]
IDP_CASES = {"idp-refresh", "idp-introspection", "idp-logout"}


def drill(out: Path, keycloak: KeycloakHarness, *args: str) -> tuple[int, dict[str, Any], str]:
    """One session on the other layers, two in Keycloak (the session's, in a realm of the
    drill's own; 2 s tolerance on a loaded machine)."""
    server = keycloak.server
    admin = {"KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
             "KC_BOOTSTRAP_ADMIN_PASSWORD": server.admin_password}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "sessionwarden", "drill", "--out", str(out), "--sessions", "1",
         "--pg-sessions", "0", "--browser-sessions", "0", "--rate", "4", "--tolerance", "2",
         "--idp-sessions", "2", "--keycloak-url", server.base_url, *args],
        cwd=REPO, capture_output=True, text=True, timeout=240, env={**os.environ, **admin},
    )  # fmt: skip
    report = out / "drill.json"
    assert report.exists(), proc.stdout + proc.stderr
    return proc.returncode, orjson.loads(report.read_bytes()), proc.stdout + proc.stderr


def test_keycloak_sessions_pass_the_idp_layer(tmp_path: Path, keycloak: KeycloakHarness) -> None:
    code, doc, text = drill(tmp_path, keycloak)
    assert 0 == code, text
    assert IDP_CASES <= set(doc["cases"])
    for name in IDP_CASES:
        row = doc["cases"][name]
        assert (2, 0, 0, 0) == (row["sessions"], row["bypasses"], row["false_cutoffs"],
                                row["unproven"]), name  # fmt: skip
    delays = {s["layer"]: s for s in doc["stats"] if s["layer"].startswith("idp-")}
    assert {"idp-refresh", "idp-intro", "idp-logout"} == set(delays)
    assert all(0 <= s["max"] <= 2.0 for s in delays.values()), delays


def test_no_idp_actuator_is_caught_as_bypasses_on_the_idp_layer_only(
    tmp_path: Path, keycloak: KeycloakHarness
) -> None:
    code, doc, text = drill(tmp_path, keycloak, "--no-idp-actuator")
    assert 1 == code, text
    found = {name: row["bypasses"] for name, row in doc["cases"].items()}
    assert all(found[name] > 0 for name in IDP_CASES), found
    assert {name: 0 for name in found if name not in IDP_CASES} == {
        name: n for name, n in found.items() if name not in IDP_CASES
    }
    assert "WITHOUT the idp actuator" in text and "BYPASS" in text
