"""The layering rules of docs/architecture.md, checked on the source itself.

Every module of the package is parsed (not imported) and every import in it counts,
including those inside functions: a deferred import is still a dependency.

* The models (``workers/`` outside ``workers/training/``) import nothing from the
  serving side (``streamer/``) or the benchmarks.
* No module of the package imports the benchmarks.
* There are no import cycles among the modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streamer", "workers", "bench")


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the packages (weights are data, not code)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports, anywhere in its body, relative imports resolved."""
    targets = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import f`, mod
            targets += [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
    found = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _is_model(name: str) -> bool:
    return name.split(".")[0] == "workers" and not name.startswith("workers.training")


def test_the_graph_sees_the_package():
    graph = _graph()
    assert {"streamer.session", "workers.regressor", "workers.training.train"} <= set(graph)
    assert "workers.prediction" in graph["streamer.session"]
    assert "streamer.frames" in graph["streamer.source"]


def test_models_import_nothing_from_the_serving_side():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() if _is_model(m)
                 for d in deps if d.split(".")[0] in ("streamer", "bench"))
    assert not bad, "models must not depend on the serving side:\n" + "\n".join(bad)


def test_nothing_imports_the_benchmarks():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() if not m.startswith("bench")
                 for d in deps if d.startswith("bench"))
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:   # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
