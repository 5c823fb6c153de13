"""The generated JSON Schema files in schemas/json/ must match the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessionwarden.contracts.jsonschema import JSON_DIR, main, render_all

EXPECTED_FILES = {
    "login.json",
    "activity.json",
    "logout.json",
    "role_change.json",
    "session_revoked.json",
    "user_revoked.json",
    "risk_change.json",
    "session_risk_changed.json",
    "auth_event.json",
    "revocation.json",
    "revalidation.json",
    "session_started.json",
    "session_ended.json",
    "role_changed.json",
    "ended_session_used.json",
    "high_risk_operation.json",
    "activity_after_revocation.json",
    "login_after_logout.json",
    "foreign_session_event.json",
    "audit_event.json",
    "alert.json",
    "dead_letter.json",
    "operator_command.json",
    "operator_command_applied.json",
}


def test_committed_schema_files_match_the_models() -> None:
    """Other teams validate against the committed files; they must never drift from the code."""
    rendered = render_all()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in JSON_DIR.glob("*.json")}

    stale = sorted(
        name for name in rendered.keys() | on_disk.keys() if rendered.get(name) != on_disk.get(name)
    )
    assert [] == stale, f"schemas/json is stale ({', '.join(stale)}); run `make schemas`"


def test_one_schema_file_per_model_and_union() -> None:
    """Each record type and each topic's union gets its own file, under a stable name."""
    assert EXPECTED_FILES == set(render_all())


def test_rendering_is_deterministic_and_ends_with_a_newline() -> None:
    """Regenerating must not produce diffs unless a model changed."""
    first, second = render_all(), render_all()

    assert first == second
    assert all(text.endswith("}\n") for text in first.values())
    assert all(
        json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text
        for text in first.values()
    )


def test_type_tag_is_required_in_every_record_schema() -> None:
    """The tag has a Python default, but a record on the wire without it is rejected."""
    for name, text in render_all().items():
        schema = json.loads(text)
        for definition in [schema, *schema.get("$defs", {}).values()]:
            if "type" in definition.get("properties", {}):
                assert "type" in definition["required"], name


def test_union_schemas_dispatch_on_type() -> None:
    """Schema-aware consumers should pick the record model from the tag, as the codec does."""
    auth_event = json.loads(render_all()["auth_event.json"])

    assert "type" == auth_event["discriminator"]["propertyName"]
    tags = {"login", "activity", "logout", "role_change"}
    tags |= {"session_revoked", "user_revoked", "risk_change"}
    assert tags == set(auth_event["discriminator"]["mapping"])


def test_check_passes_on_fresh_files_and_writes_nothing(tmp_path: Path) -> None:
    """`--check` is for CI: exit 0 when up to date, and never modify the tree."""
    assert 0 == main(["--dir", str(tmp_path)])
    before = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}

    assert 0 == main(["--check", "--dir", str(tmp_path)])
    assert before == {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}


def test_check_fails_and_lists_stale_missing_and_unexpected_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI must say exactly which files to regenerate or delete."""
    main(["--dir", str(tmp_path)])
    (tmp_path / "login.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "alert.json").unlink()
    (tmp_path / "old.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()

    status = main(["--check", "--dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert 1 == status
    assert f"stale: {tmp_path / 'login.json'}" in err
    assert f"missing: {tmp_path / 'alert.json'}" in err
    assert f"unexpected: {tmp_path / 'old.json'}" in err
    assert "make schemas" in err
    assert "{}\n" == (tmp_path / "login.json").read_text(encoding="utf-8")
