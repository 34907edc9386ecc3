"""Imports only point down the layers (docs/architecture.md):

    cli -> benchmark (with testing, api) -> methods, tasks -> augment -> datasets -> core

Every module of the package is parsed (never imported) and each ``astrobench.*`` import, at module
level or inside a function, is checked against the layer table below. A module missing from the
table is a failure too: a new top-level module must choose its layer.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "astrobench"

# layer of each top-level module or sub-package, highest first; equal numbers may import each other
LAYERS: dict[str, int] = {
    "cli": 6, "__main__": 6,
    # testing: test doubles (a method, a task, a dataset); plugin_info: what `ls --details` says of a plugin
    "benchmark": 5, "testing": 5, "api": 5, "plugin_info": 5,
    "methods": 4, "tasks": 4,
    "augment": 3,
    "datasets": 2,
    # core: no astrobench import above it (photometry: band facts for the simulator and the augmentations)
    "registry": 1, "fsutil": 1, "distributed": 1, "photometry": 1, "training": 1, "profiles": 1,
    "__init__": 1,
}
# the package root is the public facade: ``astrobench.__version__`` and the ``register_*`` decorators
# (core) for everyone, and ``astrobench.evaluate`` fetched lazily from the api layer on first use
FACADE = "astrobench/__init__.py"
# methods and tasks share a layer, but neither reaches into the other's implementation
FORBIDDEN_SIDEWAYS = {("methods", "tasks"), ("tasks", "methods")}
# what a module may use from a sibling it may not otherwise import: the small contracts
ALLOWED_SIDEWAYS = {("tasks", "astrobench.methods.base")}


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else "__init__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source, filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            if module in ("astrobench", "astrobench.benchmark", "astrobench.datasets", "astrobench.methods",
                          "astrobench.tasks", "astrobench.augment"):
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "astrobench" or name.startswith("astrobench.")]


def _layer_of(module: str) -> int | None:
    return LAYERS.get(_top(module)) if module != "astrobench" else LAYERS["__init__"]


def _violations(path: Path, source: str | None = None) -> list[str]:
    """Upward (or forbidden sideways) imports of module ``path`` (its text, or ``source`` in its place)."""
    if path.relative_to(PACKAGE.parent).as_posix() == FACADE:
        return []
    here = _module_name(path)
    here_top = "__init__" if here == "astrobench" else _top(here)
    out = []
    for line, target in _imports(path, path.read_text() if source is None else source):
        target_top = _top(target) if target != "astrobench" else "__init__"
        if target_top == here_top or _layer_of(target) is None:
            continue  # within one sub-package; a name imported from a package is checked by its own entry
        if LAYERS[target_top] > LAYERS[here_top]:
            out.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} (layer {here_top}) imports {target} "
                       f"(layer {target_top}, higher)")
        elif (here_top, target_top) in FORBIDDEN_SIDEWAYS and not any(
                where == here_top and target.startswith(prefix) for where, prefix in ALLOWED_SIDEWAYS):
            out.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} imports {target} across {here_top} -> {target_top}")
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_top_level_module_has_a_layer():
    tops = {("__init__" if _module_name(p) == "astrobench" else _top(_module_name(p))) for p in _modules()}
    assert tops - set(LAYERS) == set(), "give these modules a layer in LAYERS (and docs/architecture.md)"


def test_no_import_points_up_the_layers():
    problems = [v for path in _modules() for v in _violations(path)]
    assert problems == [], "\n".join(problems)


def test_the_checker_catches_an_upward_import():
    # the check itself can fail: a datasets module importing the runner is reported with its line
    fake = PACKAGE / "datasets" / "upward_example.py"
    source = "import numpy\nfrom astrobench.benchmark.runner import Runner\nfrom . import schema\n"
    assert _violations(fake, source) == [
        "astrobench/datasets/upward_example.py:2: astrobench.datasets.upward_example (layer datasets) "
        "imports astrobench.benchmark.runner (layer benchmark, higher)"]
    relative = "def later():\n    from ..benchmark import report\n"  # inside a function, relative: caught too
    problems = _violations(fake, relative)
    assert problems and all("imports astrobench.benchmark" in p for p in problems)


def test_methods_and_tasks_use_only_each_others_contracts():
    in_methods, in_tasks = PACKAGE / "methods" / "example.py", PACKAGE / "tasks" / "example.py"
    assert _violations(in_methods, "from astrobench.tasks.probes import Probe\n")
    assert _violations(in_tasks, "from astrobench.methods.mae import MAE\n")
    assert _violations(in_tasks, "from astrobench.methods.base import Method\n") == []


@functools.cache  # asked once per import of the package, parsed once
def _is_face(init: Path) -> bool:
    """A package's ``__init__.py`` that defines nothing of its own (a lazy ``__getattr__`` at most):
    it only hands its modules' names on, so an import through it is an import of those modules."""
    tree = ast.parse(init.read_text())
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return set(defined) <= {"__getattr__", "__dir__"}


def _module_file(name: str) -> str | None:
    """The module (dotted name) that an import target names; None for a package face and for
    anything outside the package."""
    while name.startswith("astrobench."):
        relative = Path(*name.split(".")[1:])
        if (PACKAGE / relative).with_suffix(".py").is_file():
            return name
        if (PACKAGE / relative / "__init__.py").is_file():
            return None if _is_face(PACKAGE / relative / "__init__.py") else name
        name = name.rpartition(".")[0]  # ``from astrobench.augment.ops import X``: the name, then its module
    return None


def _import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _import_graph(sources: dict[str, tuple[Path, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, (path, source) in sources.items():
        if path.name == "__init__.py" and _is_face(path):
            continue  # faces hand names on (the root's lazy ``evaluate`` included)
        targets = {_module_file(target) for _, target in _imports(path, source)}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def test_no_two_modules_import_each_other():
    # every import counts, at module level, inside a function or under TYPE_CHECKING: a module that
    # needs one of its importers' names shows that a name lives in the wrong module
    sources = {_module_name(p): (p, p.read_text()) for p in _modules()}
    assert _import_cycles(_import_graph(sources)) == []
    # the check can fail: schema importing storage inside a function (storage imports schema) is a cycle
    looped = dict(sources)
    path = PACKAGE / "datasets" / "schema.py"
    looped["astrobench.datasets.schema"] = (path, path.read_text() + "\ndef later():\n"
                                            "    from astrobench.datasets.storage import load_survey\n")
    assert _import_cycles(_import_graph(looped)) == [["astrobench.datasets.schema", "astrobench.datasets.storage"]]
