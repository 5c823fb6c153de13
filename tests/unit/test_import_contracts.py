"""The layering contracts of `make lint` (lint-imports): the circle finder behind "no import
circle in the package", shown failing on circles, and the package kept free of them."""

from __future__ import annotations

import grimp
from importlinter.domain.contract import ContractCheck

from tests.import_contracts import AcyclicModulesContract, circles


def _contract(graph: grimp.ImportGraph) -> ContractCheck:
    contract = AcyclicModulesContract(
        name="no circle", session_options={}, contract_options={"packages": ["pkg"]}
    )
    return contract.check(graph, verbose=False)


def test_a_circle_of_two_modules_is_found() -> None:
    """The circles the layout once had (a listener and its tenant view) were two modules."""
    assert [["a", "b"]] == circles({"a": {"b"}, "b": {"a"}, "c": {"a"}})


def test_a_long_circle_and_a_self_import_are_found() -> None:
    """A circle through several modules, or a module importing itself, is still a circle."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert [["a", "b", "c"], ["e"]] == circles(edges)


def test_a_graph_that_only_goes_down_has_no_circle() -> None:
    """Layers importing downward, however many paths, make no circle."""
    assert [] == circles({"top": {"mid", "low"}, "mid": {"low"}, "low": set()})


def test_the_contract_breaks_on_a_function_level_circle() -> None:
    """An import inside a function (the usual way to hide a circle) still breaks the contract;
    imports leaving the checked package do not count."""
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.listener", "pkg.view", "other"):
        graph.add_module(module)
    graph.add_import(
        importer="pkg.listener", imported="pkg.view", line_number=3, line_contents="import pkg.view"
    )
    graph.add_import(
        importer="pkg.view",
        imported="pkg.listener",
        line_number=40,
        line_contents="from pkg import listener",
        is_lazy=True,
    )
    graph.add_import(importer="other", imported="pkg.view")
    check = _contract(graph)
    assert (False, [["pkg.listener", "pkg.view"]]) == (check.kept, check.metadata["circles"])
    assert [40] == check.metadata["lines"][("pkg.view", "pkg.listener")]


def test_the_package_has_no_import_circle() -> None:
    """The layering holds in unit runs too, not only in `make lint`."""
    graph = grimp.build_graph("sessionwarden", cache_dir=None)
    inside = graph.modules
    assert [] == circles({m: graph.find_modules_directly_imported_by(m) for m in inside})
