"""An import-linter contract type the shipped ones lack: no module of a package imports itself
back, through any chain of imports (a function-level or ``TYPE_CHECKING`` import counts: it is
how a circle is usually hidden). ``make lint`` runs it through ``lint-imports`` (pyproject.toml,
[tool.importlinter]); tests/unit/test_import_contracts.py shows it failing on a circle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def circles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import circles of a graph (module -> modules it imports): its strongly connected
    components of more than one module, plus any module importing itself, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        # Tarjan's algorithm without recursion: (module, iterator over what it imports).
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, pending = work[-1]
            step = next(pending, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(edges.get(step, ())))))
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1 or module in edges.get(module, ()):
                    found.append(sorted(component))
    return sorted(found)


class AcyclicModulesContract(Contract):
    """No import circle among the modules of ``packages`` (and their descendants).

    Configuration options:
        - packages: the packages whose modules must import each other without a circle.
    """

    type_name = "acyclic_modules"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        roots: list[str] = list(self.packages)  # type: ignore[call-overload]
        inside = {m for m in graph.modules if any(m == r or m.startswith(r + ".") for r in roots)}
        edges = {m: graph.find_modules_directly_imported_by(m) & inside for m in inside}
        found = circles(edges)
        lines = {
            (a, b): [d["line_number"] for d in graph.get_import_details(importer=a, imported=b)]
            for circle in found
            for a in circle
            for b in sorted(edges[a] & set(circle))
        }
        return ContractCheck(kept=not found, metadata={"circles": found, "lines": lines})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for circle in check.metadata["circles"]:
            output.print_error(f"Import circle among {', '.join(circle)}:", bold=True)
            output.new_line()
            for (a, b), numbers in sorted(check.metadata["lines"].items()):
                if a in circle:
                    at = ", ".join(f"l.{n}" for n in numbers)
                    output.print_error(f"-   {a} -> {b} ({at})", bold=False)
            output.new_line()
