"""Installs by need: which extra a command needs, and the one line that names it when missing.

``pip install sessionwarden`` is the SDK; the processors need the ``server`` extra and the audit
tools the ``audit`` extra (which includes ``server``). A command runs inside `needs_extra`: an
import that fails because a module only an extra provides is not installed becomes
`MissingExtra`, one line and exit status 2, never a traceback. Any other failed import (a base
dependency, or a submodule of an installed distribution) is a real fault and propagates.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sessionwarden.errors import SessionwardenError

# The top-level modules each extra's distributions provide (pyproject.toml's
# [project.optional-dependencies]; a unit test keeps the two in step).
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "server": frozenset({"faust", "mode", "aiokafka", "cryptography", "uvicorn"}),
    "audit": frozenset({"matplotlib", "tqdm", "websockets", "aiohttp"}),
}
INCLUDED: dict[str, tuple[str, ...]] = {"audit": ("server",)}  # audit = sessionwarden[server] + ...


class MissingExtra(SessionwardenError):
    """A command needs a module that only one of the package's extras installs."""

    def __init__(self, command: str, extra: str, module: str) -> None:
        self.command, self.extra, self.module = command, extra, module
        super().__init__(
            f"sessionwarden {command} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'sessionwarden[{extra}]'"
        )


def provided_by(extra: str) -> frozenset[str]:
    """The top-level modules ``pip install 'sessionwarden[extra]'`` adds to the SDK's."""
    modules = EXTRA_MODULES[extra]
    for included in INCLUDED.get(extra, ()):
        modules |= provided_by(included)
    return modules


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None  # None: an import of it was made to fail
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@contextmanager
def needs_extra(command: str, extra: str | None) -> Iterator[None]:
    """Run a command's body; a module of ``extra`` that cannot be imported raises MissingExtra."""
    try:
        yield
    except ModuleNotFoundError as exc:
        module = (exc.name or "").partition(".")[0]
        if extra is None or module not in provided_by(extra) or _installed(module):
            raise
        raise MissingExtra(command, extra, module) from None
