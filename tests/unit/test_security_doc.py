"""docs/SECURITY.md states per principal what it can and cannot do, and every claim names
tests that exist: a claim whose test was renamed or deleted fails here."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECURITY = REPO / "docs" / "SECURITY.md"
SECTION = "## What each principal can and cannot do"
PRINCIPALS = (
    "Enforcer",
    "Detectors",
    "Event producer",
    "Subscribing service",
    "Security team",
    "PostgreSQL sink",
    "Operator",
)
REFERENCE = re.compile(r"`(tests/[\w/.-]+\.py)(?:::(\w+))?`")


def _section() -> str:
    text = SECURITY.read_text("utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else None]


def _claims() -> list[tuple[str, str]]:
    """(claim, covered-by cell) of every table row of the section."""
    rows = []
    for line in _section().splitlines():
        cells = (
            [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        )
        if len(cells) == 2 and cells[0] not in ("claim", "---"):
            rows.append((cells[0], cells[1]))
    return rows


def test_every_principal_has_its_claims() -> None:
    """Enforcer, detectors, producer, services, security team, sink and operator each."""
    headings = re.findall(r"^### (.+)$", _section(), flags=re.MULTILINE)
    assert [] == [p for p in PRINCIPALS if not any(h.startswith(p) for h in headings)]


def test_every_claim_names_at_least_one_test() -> None:
    """A claim without a test is a hope."""
    claims = _claims()
    assert len(claims) >= len(PRINCIPALS)
    assert [] == [claim for claim, covered in claims if not REFERENCE.search(covered)]


def test_every_named_test_exists() -> None:
    """The file, and the test function where one is named."""
    missing = []
    for _, covered in _claims():
        for path, name in REFERENCE.findall(covered):
            file = REPO / path
            if not file.is_file():
                missing.append(path)
            elif name and not re.search(
                rf"^(async )?def {name}\(", file.read_text("utf-8"), flags=re.MULTILINE
            ):
                missing.append(f"{path}::{name}")
    assert [] == missing
