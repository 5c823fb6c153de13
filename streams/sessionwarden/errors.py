"""The root exception and its narrow subclasses, shared by schemas and streams."""

from __future__ import annotations


class SessionwardenError(Exception):
    """Root of every error Sessionwarden raises on purpose."""


class ConfigError(SessionwardenError):
    """Settings, policy or topic layout that cannot be used as given."""
