"""The pure parts of the Keycloak harness: the built copy's cache key and the token's sid."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from sessionwarden.testing import keycloak


def _jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{body}.sig"


def test_session_id_is_the_tokens_sid_claim() -> None:
    assert keycloak.session_id_of(_jwt({"sub": "u-1", "sid": "abc-1"})) == "abc-1"


def test_the_built_copy_is_keyed_by_the_provider_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = tmp_path / "provider"
    shutil.copytree(keycloak.PROVIDER_DIR / "src", provider / "src")
    shutil.copy(keycloak.PROVIDER_DIR / "pom.xml", provider / "pom.xml")
    monkeypatch.setattr(keycloak, "PROVIDER_DIR", provider)
    before = keycloak.build_key()
    (provider / "target").mkdir()
    (provider / "target" / "classes.txt").write_text("build output is not a source")
    assert keycloak.build_key() == before
    source = next((provider / "src" / "main").rglob("Records.java"))
    source.write_text(source.read_text() + "\n// changed\n")
    assert keycloak.build_key() != before
    assert keycloak.keycloak_version() == "26.7.3"
