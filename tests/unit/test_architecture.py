"""The house's rooms and the direction of its imports, checked on the source itself.

Layers, bottom to top (a module may import its own room and the rooms below it):

* ``shared``: the serving library every service imports;
* ``services`` (scorers) and ``sim`` (the simulated shop), side by side;
* ``export``: training and export, which reuses the services' features and the shop's data;
* ``tools``: the CLI, load generation, benchmarks, the embedded broker, the process supervisor.

``tests`` sit outside the package and may import anything. Every import counts, including
those inside functions and under ``TYPE_CHECKING``: a cycle hidden in a function is still one.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOMS = ("shared", "services", "sim", "export", "tools")
ALLOWED: dict[str, set[str]] = {
    "shared": {"shared"},
    "services": {"shared", "services"},
    "sim": {"shared", "sim"},
    "export": {"shared", "services", "sim", "export"},
    "tools": {"shared", "services", "sim", "export", "tools"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            yield node.lineno, module
            for alias in node.names:  # "from pkg import module" imports the module
                yield node.lineno, f"{module}.{alias.name}"


def _project_files() -> list[Path]:
    return [p for room in ROOMS for p in sorted((REPO / room).rglob("*.py"))]


def _known_modules() -> set[str]:
    return {_module_name(p) for p in _project_files()}


def _edges() -> dict[str, set[tuple[str, str]]]:
    """importer module → {(imported project module, 'file:line')}."""
    known = _known_modules()
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in _project_files():
        importer = _module_name(path)
        for line, imported in _imports(path):
            if imported in known and imported != importer:
                edges[importer].add((imported, f"{path.relative_to(REPO)}:{line}"))
    return edges


def test_imports_only_run_downwards() -> None:
    upward = [
        f"{where}: {importer} imports {imported}"
        for importer, targets in _edges().items()
        for imported, where in targets
        if imported.split(".")[0] not in ALLOWED[importer.split(".")[0]]
    ]
    assert upward == []


def _component(module: str) -> str:
    """The unit cycles are checked between: a room's sub-package (``shared.runtime``) or module."""
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycles(level: str) -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, targets in _edges().items():
        for imported, _ in targets:
            a, b = (importer, imported) if level == "module" else (_component(importer), _component(imported))
            if a != b and not imported.startswith(importer + "."):  # a package importing its own parts
                graph[a].add(b)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_serving_library_holds_no_tooling() -> None:
    assert sorted(p.name for p in (REPO / "shared").iterdir() if p.is_dir() and p.name != "__pycache__") == [
        "kafka", "models", "runtime", "schemas",
    ]


def test_scorers_hold_no_kafka_code() -> None:
    """Scorers get their events, state and config from the runtime; only shared/ talks to Kafka."""
    kafka_imports = [
        f"{path.relative_to(REPO)}:{line}: {imported}"
        for path in sorted((REPO / "services").rglob("*.py"))
        for line, imported in _imports(path)
        if imported.split(".")[0] == "confluent_kafka" or imported.startswith("shared.kafka")
    ]
    assert kafka_imports == []
