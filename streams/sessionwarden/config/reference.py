"""Generate docs/SETTINGS.md, the settings reference, from the settings model.

Usage: ``python -m sessionwarden.config.reference`` (``make settings-doc``) rewrites the file;
``--check`` writes nothing and exits 1 if it differs from the model.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sessionwarden.config.settings import ENV_PREFIX, SECTIONS, Variable, variables
from sessionwarden.generated import differences, report, write_changed

__all__ = ["DOC_PATH", "main", "render"]

DOC_PATH = Path(__file__).resolve().parents[3] / "docs" / "SETTINGS.md"

_HEAD = f"""\
# Settings reference

Generated from the settings model (`streams/sessionwarden/config/settings.py`) by
`make settings-doc` (`python -m sessionwarden.config.reference`); a unit test fails when this
file and the model differ, so edit the model's descriptions, never this file.

Every setting has one name. Each process reads it from, highest priority first:

1. the environment variable `{ENV_PREFIX}<NAME>` (any case; `bootstrap_servers` also as
   `KAFKA_BOOTSTRAP_SERVERS`, which is read first);
2. the TOML config file given with `--config`, as the top-level key `<name>`;
3. the default below.

An invalid value stops the process at start with one line per problem, naming the setting.
Code reads a setting by its section: `settings.<section>.<field>` (the "In code" column).
"""


_ROOT_INTRO = "Settings every processor reads, kept on the settings object itself."


def _type(info: FieldInfo) -> str:
    annotation: Any = info.annotation
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        annotation = args[0]
    name = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )
    return f"{name} or empty" if optional else name


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "(computed)"
    value = info.default
    if value is PydanticUndefined or value is None:
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    return f"`{value}`"


def _allowed(info: FieldInfo) -> str:
    parts: list[str] = []
    low = high = ""
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            low = f"{item.ge} ≤"
        elif isinstance(item, annotated_types.Gt):
            low = f"{item.gt} <"
        elif isinstance(item, annotated_types.Le):
            high = f"≤ {item.le}"
        elif isinstance(item, annotated_types.Lt):
            high = f"< {item.lt}"
        elif isinstance(item, annotated_types.MinLen):
            many = "not empty" if item.min_length == 1 else f"at least {item.min_length} characters"
            parts.append(many)
        elif isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length} characters")
        else:
            pattern = getattr(item, "pattern", None)
            if pattern is not None:
                parts.append(f"matches `{pattern}`")
    if low or high:
        parts.insert(0, " ".join(p for p in (low, "value" if low or high else "", high) if p))
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _row(variable: Variable) -> str:
    info = variable.info
    names = " or ".join(f"`{name}`" for name in variable.environment)
    path = ".".join(p for p in ("settings", variable.section, variable.field) if p)
    cells = [
        f"`{variable.name}`",
        names,
        f"`{path}`",
        _type(info),
        _default(info),
        _allowed(info),
        info.description or "",
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(rows: list[Variable]) -> list[str]:
    return [
        "| Setting | Environment | In code | Type | Default | Allowed | Description |",
        "|---|---|---|---|---|---|---|",
        *(_row(v) for v in rows),
    ]


def render() -> str:
    """The whole reference, one section of the model after another."""
    every = list(variables())
    lines = [_HEAD]
    lines += ["## Every process (`settings`)", "", _ROOT_INTRO, ""]
    lines += [*_table([v for v in every if not v.section]), ""]
    for section, model in SECTIONS.items():
        lines += [f"## {section} (`settings.{section}`)", ""]
        lines += [_cell(inspect.cleandoc(model.__doc__ or "")), ""]
        lines += [*_table([v for v in every if v.section == section]), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the settings reference; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m sessionwarden.config.reference", description=__doc__
    )
    parser.add_argument("--check", action="store_true", help="verify only; exit 1 if stale")
    parser.add_argument("--path", type=Path, default=DOC_PATH, help="the file to write")
    args = parser.parse_args(argv)
    rendered = {args.path: render()}
    if args.check:
        return report(differences(rendered), "settings-doc", "sessionwarden.config.reference")
    write_changed(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
