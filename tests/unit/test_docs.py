"""The docs name what exists: repository paths, and the settings' environment variables."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from sessionwarden.config.settings import FlatSettings as Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP = "streams|schemas|tests|infra|bench|docs|examples"
PATH = re.compile(rf"(?<![\w./-])((?:{TOP})/[\w./-]*[\w/])")
PLACEHOLDER = re.compile(r"NNN|<|\*")  # a file-name pattern, not a file
VARIABLE = re.compile(r"SESSIONWARDEN_([A-Z0-9_]*[A-Z0-9])")
# "`SESSIONWARDEN_LOG_FORMAT` / `_LOG_LEVEL`": the second stands for SESSIONWARDEN_LOG_LEVEL
# (as many as follow, each against the first).
SHORTHAND = re.compile(r"`SESSIONWARDEN_([A-Z0-9_]+)`((?:\s*/\s*`_[A-Z0-9_]+`)+)")
SHORT = re.compile(r"`_([A-Z0-9_]+)`")
NOT_SETTINGS = ("Makefile", ".ci/run")  # variables read by the tests and tools, not Settings


def _exists_or_generated(path: str) -> bool:
    """On disk, or a path the build makes and .gitignore keeps out (a venv, a results folder)."""
    if (REPO / path).exists():
        return True
    for candidate in (path, path + "/"):  # a file, or a folder ("/bench/.venv-quix/")
        if subprocess.run(["git", "check-ignore", "-q", candidate], cwd=REPO).returncode == 0:
            return True
    return False


def _documented(doc: Path) -> set[str]:
    names: set[str] = set()
    for line in doc.read_text("utf-8").splitlines():
        names.update(VARIABLE.findall(line))
        for first, shorts in SHORTHAND.findall(line):
            for short in SHORT.findall(shorts):
                keep = first.split("_")[: -len(short.split("_"))]
                names.add("_".join([*keep, short]))
    return names


def _code_text() -> str:
    files = [*REPO.glob("streams/**/*.py"), *REPO.glob("tests/**/*.py")]
    files += [*REPO.glob("infra/**/*.py"), *REPO.glob("bench/**/*.py")]
    files += [REPO / name for name in NOT_SETTINGS if (REPO / name).exists()]
    return "\n".join(path.read_text("utf-8") for path in files)


def _environment_names(field: str) -> set[str]:
    alias = Settings.model_fields[field].validation_alias
    choices = getattr(alias, "choices", None) or []
    named = {str(choice) for choice in choices if str(choice).isupper()}
    return {f"SESSIONWARDEN_{field.upper()}", *named}


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_repository_path_a_doc_names_exists(doc: Path) -> None:
    """A moved or deleted file must not leave its old path in the docs."""
    named = {m.group(1) for m in PATH.finditer(doc.read_text("utf-8"))}
    missing = sorted(p for p in named if not PLACEHOLDER.search(p) and not _exists_or_generated(p))
    assert [] == missing


def test_every_documented_variable_is_a_setting_or_read_by_name() -> None:
    """A variable the docs tell operators to set must be one something actually reads."""
    fields = set(Settings.model_fields)
    code = _code_text()
    unknown = sorted(
        f"{doc.name}: SESSIONWARDEN_{name}"
        for doc in DOCS
        for name in _documented(doc)
        if name.lower() not in fields and f"SESSIONWARDEN_{name}" not in code
    )
    assert [] == unknown


def test_every_setting_is_documented() -> None:
    """Each field of Settings is named, as its environment variable, in the README or docs/."""
    documented = {f"SESSIONWARDEN_{name}" for doc in DOCS for name in _documented(doc)}
    text = "\n".join(doc.read_text("utf-8") for doc in DOCS)
    missing = sorted(
        field
        for field in Settings.model_fields
        if not any(n in documented or f"`{n}`" in text for n in _environment_names(field))
    )
    assert [] == missing
