"""Bearer tokens of the web endpoints (the dashboard, /metrics /healthz /readyz): read from a
file the operator gives, or made at random at start and written, readable by the owner only,
to a file whose path (never the token) is logged."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sessionwarden.errors import ConfigError

MIN_TOKEN_CHARS = 16


def read_token(path: Path | None) -> tuple[str, bool]:
    """The token from ``path`` (first line, stripped), or a fresh random one (and True)."""
    if path is None:
        return new_token(), True
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"token file {path}: {exc.strerror}") from exc
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"token file {path}: the token must be {MIN_TOKEN_CHARS}+ characters")
    return token, False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def write_token(path: Path, token: str) -> Path:
    """Write ``token`` to ``path`` with mode 0600, replacing the file atomically (a scraper
    reading it meanwhile sees the old token or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path
