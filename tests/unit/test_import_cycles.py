"""No import cycle among the modules of models/, streams/ and services/.

Every ``import`` and ``from ... import`` is read with ``ast``, at module level and inside
functions alike (a lazy import that closes a cycle still ties the modules together; it only
fails later, at the first call). Importing ``a.b.c`` also runs the packages ``a`` and ``a.b``,
so those count as imported too (except a module's own packages, which Python has run before it);
``from a.b import c`` counts ``a.b.c`` where ``c`` is a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "streams", "services")


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every .py file under the packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(name: str, path: Path) -> set[str]:
    """Dotted names ``path`` imports anywhere in its body (relative imports resolved against ``name``)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of the tree it makes Python run.

    A module's own packages are left out of the packages an import runs on the way (Python has
    run them before the module itself), but count where the module imports them by name."""
    modules = module_files()
    graph = {}
    for name, path in modules.items():
        parts = name.split(".")
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts))}
        targets = set()
        for dotted in imported_names(name, path):
            steps = dotted.split(".")
            on_the_way = {".".join(steps[:i]) for i in range(1, len(steps))} - ancestors
            targets.update(m for m in on_the_way | {dotted} if m in modules)
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, white / grey / black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_checker_finds_a_cycle_through_a_lazy_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    graph = import_graph()
    # an import inside a function counts, with the packages it runs on the way
    assert {"models", "models.training", "models.training.train"} <= graph["services.model_commands"]
    # a module's own packages have run before it: not an import of it (else every package that
    # imports its submodules would be a cycle)
    assert "models.training" not in graph["models.training.train"]
    assert "models.training.config" in graph["models.training.train"]


def test_no_import_cycle_in_models_streams_services():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
