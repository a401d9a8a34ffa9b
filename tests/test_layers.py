"""The layering rules of docs/architecture.md, checked on the source itself.

Every module is parsed (not imported) and every import in it counts, including those
inside functions: a deferred import is still a dependency. Each module belongs to one
layer, a package (``streamer.tracking``, ``training``, ...); ``ALLOWED`` states every arrow
of the architecture diagram, and any import between layers that it does not list fails.
There are no import cycles among the modules either.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streamer", "workers", "training", "bench")

CONFIG, CLOCK = "streamer.config", "streamer.clock"
SOURCES, DATA, TRACKING, PERSONS = "streamer.sources", "streamer.data", "streamer.tracking", "streamer.persons"
PIPELINE, SERVICE, TESTBED = "streamer.pipeline", "streamer.service", "streamer.testbed"
REPORT, VIEW, CLI = "streamer.report", "streamer.view", "streamer.cli"
STREAMER = {CONFIG, CLOCK, SOURCES, DATA, TRACKING, PERSONS, PIPELINE, SERVICE, TESTBED, REPORT, VIEW, CLI}

# layer -> the layers it may import: the arrows of docs/architecture.md, top to bottom
ALLOWED: dict[str, set[str]] = {
    "bench": STREAMER | {"workers", "training"},
    "training": {CONFIG, SOURCES, DATA, PIPELINE, "workers"},
    CLI: {CONFIG, SOURCES, DATA, PIPELINE, SERVICE, TESTBED, REPORT, VIEW, "workers"},
    VIEW: {CONFIG, DATA, SERVICE, REPORT, "workers"},
    REPORT: {CONFIG, DATA, SOURCES, "workers"},
    SERVICE: {CONFIG, CLOCK, SOURCES, DATA, PIPELINE},
    TESTBED: {SOURCES},
    PIPELINE: {CONFIG, CLOCK, SOURCES, DATA, TRACKING, PERSONS, "workers"},
    PERSONS: {CONFIG, DATA, "workers"},
    TRACKING: {CONFIG, SOURCES, "workers"},
    DATA: {CONFIG, SOURCES, "workers"},
    SOURCES: {CONFIG},
    CONFIG: {"workers"},
    CLOCK: set(),
    "streamer": set(),
    "workers": set(),
}


def layer(module: str) -> str:
    """``streamer.tracking.cuts`` -> ``streamer.tracking``; ``workers.crops`` -> ``workers``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "streamer" and len(parts) > 1 else parts[0]


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


def test_the_graph_sees_the_package():
    graph = _graph()
    assert {"streamer.pipeline.session", "workers.regressor", "training.train"} <= set(graph)
    assert "workers.prediction" in graph["streamer.pipeline.session"]
    assert "streamer.sources.frames" in graph["streamer.sources.files"]


def test_every_module_is_in_a_layer_of_the_diagram():
    unknown = sorted(m for m in _graph() if layer(m) not in ALLOWED)
    assert not unknown, "modules outside every layer of docs/architecture.md: " + ", ".join(unknown)


def test_every_import_between_layers_is_an_arrow_of_the_diagram():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps
                 if layer(d) != layer(m) and layer(d) not in ALLOWED.get(layer(m), set()))
    assert not bad, "imports that docs/architecture.md does not draw:\n" + "\n".join(bad)


def test_every_arrow_of_the_diagram_is_used():
    """An arrow nobody needs any more is taken out of the diagram, so that it stays a map
    (the benchmarks excepted: they may drive any layer)."""
    used = {(layer(m), layer(d)) for m, deps in _graph().items() for d in deps if layer(m) != layer(d)}
    unused = sorted(f"{a} -> {b}" for a, targets in ALLOWED.items() if a != "bench"
                    for b in targets if (a, b) not in used)
    assert not unused, "arrows no import uses: " + ", ".join(unused)


def test_nothing_in_the_serving_path_imports_training():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() if layer(m) not in ("training", "bench")
                 for d in deps if layer(d) == "training")
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
