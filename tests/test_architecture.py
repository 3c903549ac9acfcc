"""The house rules of docs/architecture.md, checked over the source (no application is built).

Layers, lowest first: `core` < `supporters` < `campaigns` < `webhooks` < `dialog` < `reports` < `api`. A module may import its own
package and any lower layer, never a higher one, and nothing imports the composition root
(`wsgi`). Imports inside functions count too: a deferred import is still an arrow. There are no
import cycles between modules, and no application module is longer than MAX_LINES.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "supporters", "campaigns", "webhooks", "dialog", "reports", "api")
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Every module of ours that `path` imports (resolving `from package import submodule`)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in (*LAYERS, "wsgi") and (target in known or target == "wsgi"):
                found.add(target)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(path, name, known) for name, path in known.items()}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_module_imports_a_higher_layer_or_the_composition_root():
    upward = sorted(f"{module} imports {target}" for module, targets in _graph().items() for target in targets
                    if target == "wsgi" or _layer(target) > _layer(module))
    assert upward == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
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
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_there_are_no_import_cycles_between_modules():
    assert _cycles(_graph()) == []


def test_no_application_module_is_longer_than_the_limit():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path):
    """The checker itself: an upward import and a two-module cycle are found."""
    pkg = tmp_path / "core"
    pkg.mkdir()
    (pkg / "a.py").write_text("from campaigns.engine import send_range\nimport core.b\n")
    (pkg / "b.py").write_text("def f():\n    from core import a\n")
    known = {"core.a": pkg / "a.py", "core.b": pkg / "b.py", "campaigns.engine": Path("x")}
    assert _imports(pkg / "a.py", "core.a", known) == {"campaigns.engine", "core.b"}
    assert _imports(pkg / "b.py", "core.b", known) == {"core.a"}
    graph = {"core.a": {"campaigns.engine", "core.b"}, "core.b": {"core.a"}, "campaigns.engine": set()}
    assert _cycles(graph) == [["core.a", "core.b"]]
