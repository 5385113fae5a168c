"""The package's layers, read from the source (``ast``; nothing is imported): every import,
also those inside functions, goes to the same layer or one below; no import loop among
module-level imports. ``docs/concepts/layers.md`` draws the same map."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dspex_lab"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base: words, values, views", (
        "errors", "_env", "_lazy", "kinds", "redaction", "signatures", "exchange", "telemetry",
        "display")),
    ("services: LMs, the embedded LM, workers, identity, cache", (
        "lm_server", "lm", "identity", "portable", "cache", "usage", "workers",
        "kernel_settings", "programs", "runtime", "distributed")),
    ("single calls: the router and what it routes", (
        "router", "calls", "native", "history", "trace", "settings")),
    ("batch runs", ("batch", "accessor")),
    ("programs over data: evaluate, optimize, pipelines, saved programs, retrieval", (
        "evaluate", "optimize", "persistence", "pipeline", "retrieval")),
    ("the notebook: magics, widgets, the JupyterLab panel, the command line", (
        "magics", "widgets", "labext", "config", "warmup", "cli", "testing")),
]
"""Lowest first. A module belongs to the longest prefix that names it."""

ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    ("dspex_lab.exchange.values", "dspex_lab.workers.protocol"):
        "check_pickle guards every pickle before loads; it lives with the wire format "
        "(to move into exchange/ with its opcode tables)",
}
"""Documented exceptions: (importer, imported) -> why."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


def owner(name: str) -> str | None:
    """The dspex_lab module an imported name lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, *, module_level_only: bool) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(owner(a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*parts, *([child.module] if child.module else [])])
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.add(owner(full) if full in MODULES else owner(base))
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m is not None and m != module}


def layer(module: str) -> int:
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            full = f"dspex_lab.{prefix}"
            if (module == full or module.startswith(full + ".")) and len(full) > best_len:
                best, best_len = index, len(full)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and the docs' map)"
    return best


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "dspex_lab"))
def test_no_module_imports_a_layer_above_it(module):
    here = layer(module)
    upward = sorted(m for m in imports(module, module_level_only=False)
                    if m != "dspex_lab" and layer(m) > here
                    and (module, m) not in ALLOWED_UPWARD)
    assert not upward, (f"{module} ({LAYERS[here][0]}) imports from a layer above it: "
                        + ", ".join(f"{m} ({LAYERS[layer(m)][0]})" for m in upward))


def test_only_the_version_is_read_from_the_top_level_facade():
    for module in MODULES:
        if module in ("dspex_lab", "dspex_lab.cli"):
            continue
        tree = ast.parse(MODULES[module].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "dspex_lab" and not node.level:
                names = {a.name for a in node.names}
                assert names <= {"__version__"} | {m.rpartition(".")[2] for m in MODULES
                                                   if m.count(".") == 1}, (module, names)


def test_no_import_loops_among_module_level_imports():
    graph = {m: imports(m, module_level_only=True) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert not loops, f"import loops: {loops}"
