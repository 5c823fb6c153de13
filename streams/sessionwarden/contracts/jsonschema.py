"""Generate the JSON Schema files in schemas/json/ from the models.

Usage: ``python -m sessionwarden.contracts.jsonschema`` rewrites the files; ``--check`` writes
nothing and exits 1 if any file is stale, missing or unexpected.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from sessionwarden.contracts.commands import OperatorCommand
from sessionwarden.contracts.inputs import (
    AUTH_EVENT_ADAPTER,
    Activity,
    Login,
    Logout,
    RiskChange,
    RoleChange,
    SessionRevoked,
    UserRevoked,
)
from sessionwarden.contracts.outputs import (
    AUDIT_EVENT_ADAPTER,
    ActivityAfterRevocation,
    Alert,
    DeadLetter,
    EndedSessionUsed,
    ForeignSessionEvent,
    HighRiskOperation,
    LoginAfterLogout,
    OperatorCommandApplied,
    Revalidation,
    Revocation,
    RoleChanged,
    SessionEnded,
    SessionRiskChanged,
    SessionStarted,
    TenantRevocation,
)
from sessionwarden.generated import differences, report, write_changed

__all__ = ["JSON_DIR", "SCHEMA_DIALECT", "main", "render_all"]

JSON_DIR = Path(__file__).resolve().parents[3] / "schemas" / "json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_SOURCES: dict[str, tuple[str, TypeAdapter[Any]]] = {
    "login.json": ("Login", TypeAdapter(Login)),
    "activity.json": ("Activity", TypeAdapter(Activity)),
    "logout.json": ("Logout", TypeAdapter(Logout)),
    "role_change.json": ("RoleChange", TypeAdapter(RoleChange)),
    "session_revoked.json": ("SessionRevoked", TypeAdapter(SessionRevoked)),
    "user_revoked.json": ("UserRevoked", TypeAdapter(UserRevoked)),
    "risk_change.json": ("RiskChange", TypeAdapter(RiskChange)),
    "auth_event.json": ("AuthEvent", AUTH_EVENT_ADAPTER),
    "revocation.json": ("Revocation", TypeAdapter(Revocation)),
    "revalidation.json": ("Revalidation", TypeAdapter(Revalidation)),
    "tenant_revocation.json": ("TenantRevocation", TypeAdapter(TenantRevocation)),
    "session_started.json": ("SessionStarted", TypeAdapter(SessionStarted)),
    "session_ended.json": ("SessionEnded", TypeAdapter(SessionEnded)),
    "role_changed.json": ("RoleChanged", TypeAdapter(RoleChanged)),
    "ended_session_used.json": ("EndedSessionUsed", TypeAdapter(EndedSessionUsed)),
    "high_risk_operation.json": ("HighRiskOperation", TypeAdapter(HighRiskOperation)),
    "activity_after_revocation.json": (
        "ActivityAfterRevocation",
        TypeAdapter(ActivityAfterRevocation),
    ),
    "login_after_logout.json": ("LoginAfterLogout", TypeAdapter(LoginAfterLogout)),
    "foreign_session_event.json": ("ForeignSessionEvent", TypeAdapter(ForeignSessionEvent)),
    "operator_command_applied.json": (
        "OperatorCommandApplied",
        TypeAdapter(OperatorCommandApplied),
    ),
    "session_risk_changed.json": ("SessionRiskChanged", TypeAdapter(SessionRiskChanged)),
    "audit_event.json": ("AuditEvent", AUDIT_EVENT_ADAPTER),
    "alert.json": ("Alert", TypeAdapter(Alert)),
    "dead_letter.json": ("DeadLetter", TypeAdapter(DeadLetter)),
    "operator_command.json": ("OperatorCommand", TypeAdapter(OperatorCommand)),
}
"""Output file name -> (schema title, adapter). Unions get a title; models carry their own."""


def _render(title: str, adapter: TypeAdapter[Any]) -> str:
    schema = adapter.json_schema(mode="validation")
    schema.setdefault("title", title)
    schema["$schema"] = SCHEMA_DIALECT
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """Return every schema file's name and exact expected text."""
    return {name: _render(title, adapter) for name, (title, adapter) in _SOURCES.items()}


def _stale(directory: Path, rendered: dict[str, str]) -> list[str]:
    problems = differences({directory / name: text for name, text in rendered.items()})
    for path in sorted(directory.glob("*.json")):
        if path.name not in rendered:
            problems.append(f"unexpected: {path}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the schema files; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m sessionwarden.contracts.jsonschema", description=__doc__
    )
    parser.add_argument("--check", action="store_true", help="verify only; exit 1 if stale")
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help="output directory")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    rendered = render_all()
    if args.check:
        return report(_stale(directory, rendered), "schemas", "sessionwarden.contracts.jsonschema")
    directory.mkdir(parents=True, exist_ok=True)
    write_changed({directory / name: text for name, text in rendered.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
