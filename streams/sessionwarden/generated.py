"""Files generated from the package's own models (the settings reference, the JSON Schemas):
written only where they changed, and checked without writing (``--check``: each file that is
not as rendered, and how to regenerate them). Plain files only: imports nothing of the package."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def differences(rendered: Mapping[Path, str]) -> list[str]:
    """``missing: PATH`` or ``stale: PATH`` for each file whose text is not as rendered."""
    problems: list[str] = []
    for path, text in rendered.items():
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"stale: {path}")
    return problems


def report(problems: list[str], make_target: str, module: str) -> int:
    """Each problem on stderr, then how to regenerate; the exit status of ``--check``."""
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        return 0
    print(f"run `make {make_target}` (python -m {module}) to regenerate", file=sys.stderr)
    return 1


def write_changed(rendered: Mapping[Path, str]) -> None:
    """Each file whose text is not as rendered written, and named on stdout."""
    for path, text in rendered.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
