"""The package's imports point one way: no module imports, at its top or inside a function, one that imports it
back, directly or through others; and each stage's folder imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "evalfast"
# The pipeline's layers, top first: a module may import its own layer's and the layers' below (README, "How it works").
LAYERS = [
    {"evalfast", "evalfast.__main__", "evalfast.cli", "evalfast.cli_golden"},
    {"evalfast.train"},
    {"evalfast.reports"},
    {"evalfast.perf", "evalfast.comparison"},
    {"evalfast.evaluate"},
    {"evalfast.search", "evalfast.metrics", "evalfast.generate"},
    {"evalfast.model", "evalfast.data"},
    {"evalfast.choices", "evalfast.errors", "evalfast.atomic", "evalfast.progress"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its code (deferred imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    graph = {module_name(path): imported(path, modules) for path in paths}
    for module in graph:  # a package's __init__ is run by importing any of its modules: not an edge back
        graph[module] = {m for m in graph[module] if not module.startswith(m + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert len(graph) > 40 and "evalfast.data.trec_parse" in graph["evalfast.data.trec"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def layer(module: str) -> int:
    """The index in LAYERS of the folder (or top-level module) that holds ``module``."""
    parts = module.split(".")
    unit = ".".join(parts[:2])
    return next(i for i, members in enumerate(LAYERS) if unit in members or module in members)


def test_each_stage_imports_only_the_layers_below_it() -> None:
    graph = import_graph()
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                    if layer(target) < layer(module))
    assert upward == []
    assert {".".join(module.split(".")[:2]) for module in graph} <= set().union(*LAYERS)  # every folder is placed
