"""docs/SETTINGS.md is generated from the settings model and must never drift from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionwarden.config.reference import DOC_PATH, main, render
from sessionwarden.config.settings import SECTIONS, variables


def test_the_committed_reference_matches_the_model() -> None:
    """Regenerate with `make settings-doc` after changing a setting."""
    assert DOC_PATH.read_text(encoding="utf-8") == render()


def test_check_fails_on_a_stale_or_missing_reference_and_passes_on_a_fresh_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "SETTINGS.md"
    assert 1 == main(["--check", "--path", str(doc)])
    assert "missing" in capsys.readouterr().err
    assert 0 == main(["--path", str(doc)])
    assert 0 == main(["--check", "--path", str(doc)])
    doc.write_text(doc.read_text(encoding="utf-8").replace("`5000`", "`1000`"), encoding="utf-8")
    assert 1 == main(["--check", "--path", str(doc)])
    assert "make settings-doc" in capsys.readouterr().err


def test_every_variable_is_one_row_with_its_environment_names_and_its_code_path() -> None:
    text = render()
    for variable in variables():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{variable.name}` |")]
        assert 1 == len(rows), variable.name
        for name in variable.environment:
            assert f"`{name}`" in rows[0]
        path = ".".join(p for p in ("settings", variable.section, variable.field) if p)
        assert f"`{path}`" in rows[0]
    assert "`KAFKA_BOOTSTRAP_SERVERS` or `SESSIONWARDEN_BOOTSTRAP_SERVERS`" in text


def test_every_setting_has_a_description_and_every_section_a_heading() -> None:
    assert [] == [v.name for v in variables() if not (v.info.description or "").strip()]
    text = render()
    assert [] == [s for s in SECTIONS if f"## {s} (`settings.{s}`)" not in text]
