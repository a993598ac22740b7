"""The import graph of the project's packages, read from the source (no import runs): no cycles,
the core imports no adapter, nothing imports the command line, and no test module imports
another.

Every import counts, wherever it is written (a function, an `if TYPE_CHECKING:` block): a cycle
through a deferred import is still two modules that cannot be understood one without the other.
`from package import name` depends on the package (its `__init__` runs) and, where `name` is a
module, on that module too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("leadtime", "autoscaler", "adapters", "forecasting", "load_tests")
CORE = "autoscaler"
COMMAND_LINE = "leadtime"
"""The composition root, which wires adapters to the core."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` (module `name`) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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


def test_the_reader_sees_every_import_kind():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    modules = project_modules()
    registry = imports_of(modules["forecasting.registry"], "forecasting.registry", modules)
    assert {"forecasting.models", "forecasting.selection", "forecasting.base"} <= registry
    results = "adapters.simulator.results"
    assert "adapters.simulator.cluster" in imports_of(modules[results], results, modules)


def test_no_module_imports_itself_back():
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def layer_imports(graph: dict[str, set[str]], source: str, target: str) -> dict[str, list]:
    """Which modules of package `source` import package `target`."""
    offenders = {
        module: sorted(found for found in targets if found.split(".")[0] == target)
        for module, targets in graph.items()
        if module.split(".")[0] == source
    }
    return {module: found for module, found in offenders.items() if found}


def test_the_core_imports_no_adapter():
    """Ports, loop and policies know adapters only through the ports; the command line is the
    composition root that wires them."""
    assert layer_imports(import_graph(), CORE, "adapters") == {}


def test_nothing_imports_the_command_line():
    graph = import_graph()
    for package in ("autoscaler", "adapters", "forecasting"):
        assert layer_imports(graph, package, COMMAND_LINE) == {}, package


def test_nothing_shipped_imports_the_load_tests():
    """The load test's processes (`load_tests/local/`) are test equipment, not in the image."""
    graph = import_graph()
    for package in ("leadtime", "autoscaler", "adapters", "forecasting"):
        assert layer_imports(graph, package, "load_tests") == {}, package


def test_no_test_module_imports_another():
    """Shared helpers live in tests/helpers/ (and tests/cluster/); a test module is read alone."""
    tests = ROOT / "tests"
    modules = {module_name(path): path for path in tests.rglob("*.py")}
    offenders = {
        name: sorted(found for found in imports_of(path, name, modules) if _is_test(found))
        for name, path in modules.items()
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def _is_test(module: str) -> bool:
    return module.rpartition(".")[2].startswith("test_")


def test_forecasting_is_a_library_of_its_own():
    graph = import_graph()
    assert layer_imports(graph, "forecasting", CORE) == {}
    assert layer_imports(graph, "forecasting", "adapters") == {}
