"""The ``areplicate`` package's import graph has no cycles (apart from the known ones listed).

Every ``import`` statement counts, wherever it stands: at module level, inside a function (a lazy
import) or under ``if TYPE_CHECKING:``, since each of those still ties the two modules together
for a reader. An edge goes to the module named (``from areplicate.x import y`` points at
``areplicate.x.y`` when that is a module, else at ``areplicate.x``); the implicit import of parent
packages is left out, as it says nothing about how the modules depend on each other.
"""

from __future__ import annotations

import ast
import pathlib

import areplicate

ROOT = pathlib.Path(areplicate.__file__).parent

#: Cycles outside ``areplicate.testing`` that existed when this test was written, each given as
#: the sorted modules of one strongly connected component. They are another reshaping's work;
#: listing them keeps this test failing on any new cycle meanwhile. Remove an entry once fixed.
KNOWN_CYCLES: set[frozenset[str]] = set()


def test_every_known_cycle_still_exists() -> None:
    """A fixed cycle leaves the list, so it cannot come back unnoticed."""
    assert cycles(import_graph()) >= KNOWN_CYCLES


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """Module name -> the ``areplicate`` modules its import statements name."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - node.level + 1]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in modules else base)
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "areplicate.testing._state" in graph["areplicate.testing._fake"]
    assert "areplicate._core.refs" in graph["areplicate.testing._state"]


def test_the_fake_has_no_import_cycle() -> None:
    graph = import_graph()
    inside = [c for c in cycles(graph) if any(m.startswith("areplicate.testing") for m in c)]
    assert inside == []


def test_no_new_import_cycle_in_the_package() -> None:
    found = cycles(import_graph())
    new = found - KNOWN_CYCLES
    assert new == set(), "new import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in new)
