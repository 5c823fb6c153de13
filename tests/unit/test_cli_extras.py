"""Installs by need: the SDK imports without any extra, and a command whose extra is missing
says in one line which extra to install instead of printing a traceback."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sessionwarden.cli.extras import EXTRA_MODULES, MissingExtra, needs_extra, provided_by
from sessionwarden.cli.main import COMMANDS

REPO = Path(__file__).resolve().parents[2]
EVERY_EXTRA_MODULE = sorted(provided_by("audit"))
SDK_MODULES = [
    "sessionwarden.sdk",
    "sessionwarden.sdk.asgi",
    "sessionwarden.sdk.health",
    "sessionwarden.sdk.lifetime",
    "sessionwarden.sdk.listener",
    "sessionwarden.sdk.listener_metrics",
    "sessionwarden.sdk.pg_guard",
    "sessionwarden.sdk.publisher",
    "sessionwarden.sdk.push",
    "sessionwarden.sdk.revocation_set",
    "sessionwarden.sdk.staleness",
    "sessionwarden.sdk.tenant_view",
]


def _without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which importing any of ``modules`` fails, as on
    an install without the extras that provide them."""
    block = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", f"import sys\n{block}{code}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[=<>~!; ]", r, maxsplit=1)[0].lower() for r in requirements}


def _distribution_of(module: str) -> str:
    return importlib.metadata.packages_distributions()[module][0].lower()


def test_a_command_whose_extra_is_missing_names_the_extra_in_one_line() -> None:
    """A service that installed only the SDK and runs a processor learns what to install."""
    run = _without(["faust"], "from sessionwarden.cli.main import main; sys.exit(main(['detect']))")

    assert 2 == run.returncode
    assert (
        "sessionwarden detect needs the 'server' extra (faust is not installed): "
        "pip install 'sessionwarden[server]'\n"
    ) == run.stderr


def test_an_audit_command_names_the_audit_extra_even_for_a_server_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The audit extra includes the server one, so installing it is the one fix to name."""
    monkeypatch.setitem(sys.modules, "faust", None)  # as if faust-streaming were not installed
    with pytest.raises(MissingExtra) as caught, needs_extra("drill", "audit"):
        raise ModuleNotFoundError("No module named 'faust.app'", name="faust.app")

    assert ("drill", "audit", "faust") == (
        caught.value.command,
        caught.value.extra,
        caught.value.module,
    )
    assert "pip install 'sessionwarden[audit]'" in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "missing"),
    [(None, "faust"), ("server", "matplotlib"), ("server", "yaml"), ("audit", "pydantic")],
)
def test_a_missing_module_the_extra_does_not_provide_is_a_fault_not_a_hint(
    extra: str | None, missing: str
) -> None:
    """Naming an extra that would not help would hide the real fault: the import error stays."""
    with pytest.raises(ModuleNotFoundError), needs_extra("some-command", extra):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)


def test_a_missing_submodule_of_an_installed_extra_is_a_fault_not_a_hint() -> None:
    """With faust installed, telling the user to install it would send them the wrong way."""
    with pytest.raises(ModuleNotFoundError), needs_extra("detect", "server"):
        import faust.no_such_module  # type: ignore[import-not-found]  # noqa: F401


def test_the_sdk_and_the_command_line_import_without_any_extra() -> None:
    """`pip install sessionwarden` alone must give a working SDK and `sessionwarden --help`."""
    code = "\n".join(
        [
            "import importlib",
            *(f"importlib.import_module({m!r})" for m in SDK_MODULES),
            "from sessionwarden.cli.main import build_parser",
            "build_parser().format_help()",
            "print('ok')",
        ]
    )
    run = _without(EVERY_EXTRA_MODULE, code)

    assert (0, "ok\n") == (run.returncode, run.stdout), run.stderr


def test_every_command_names_an_extra_the_package_declares() -> None:
    """A typo in a command's extra would print an install line that installs nothing."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    assert set() == {c.EXTRA for c in COMMANDS if c.EXTRA is not None} - set(extras)
    assert set(EXTRA_MODULES) <= set(extras)


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_the_modules_of_each_extra_match_its_distributions_in_pyproject(extra: str) -> None:
    """Every distribution an extra adds is recognised when missing, and no module of the base
    install is ever blamed on an extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _names(project["optional-dependencies"][extra]) - {"sessionwarden"}
    base = _names(project["dependencies"])
    allowed = wanted | {
        name for dist in wanted for name in _names(importlib.metadata.requires(dist) or [])
    }
    found = {_distribution_of(module) for module in EXTRA_MODULES[extra]}

    assert set() == wanted - found  # an extra's distribution without a module in the map
    assert set() == found - allowed  # a module in the map from outside the extra
    assert set() == found & base
