"""The package's import graph: no circles, and engine knowledge only in controlplane/engines/.

Read with `ast` from the source (nothing imported). How imports count:
- every `import` / `from ... import` runs, at module level or inside a function: a
  function-local import still loads the module, only later, so an upward one is a circle
  that shows up at run time. Both count. Imports under `if TYPE_CHECKING:` never run and do
  not count;
- `from pkg import name` is an edge to `pkg.name` when that is a module, else to `pkg`;
  importing `a.b.c` also runs the `__init__` of `a` and `a.b`, so those are edges too,
  except a module's own ancestors (Python runs them first, whoever imports the module).

"Compares an engine kind" means: a comparison (`==`, `!=`, `is`, `is not`, `in`,
`not in`), a `match` case or a dict-literal key that names one engine: an `EngineKind`
member (`EngineKind.VLLM`, or any `X.VLLM`), a bare name such as `VLLM` or `FLAVOR_VLLM`,
or the engine's name as a string ("vllm"), alone or inside a tuple, list or set. A dict
keyed by engine is an if/elif in disguise. Outside controlplane/engines/ code asks the
engine's profile (`controlplane.engines.profile_for`) instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from controlplane.spec.models import EngineKind

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "controlplane"
ENGINES = "controlplane/engines/"
KIND_NAMES = {kind.name for kind in EngineKind}
KIND_VALUES = {kind.value for kind in EngineKind}

# Modules outside engines/ still allowed to compare engine kinds, each with why (none
# left: capacity, catalog and spec ask rule objects the profiles name). A stale entry
# (the module no longer compares one) fails `test_the_allowlist_is_not_stale`.
ALLOWED: dict[str, str] = {}


# ----- the import graph ------------------------------------------------------------------
def module_name(path: Path, root: Path) -> str:
    """`controlplane.a.b` for root/../controlplane/a/b.py (or .../a/b/__init__.py)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _running_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node` except the bodies of `if TYPE_CHECKING:` (never run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other
                yield from _running_nodes(other)
            continue
        yield child
        yield from _running_nodes(child)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of every import that runs; `from pkg import x` gives `pkg.x`."""
    for node in _running_nodes(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
                yield base, node.lineno


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules its imports run (see the module docstring)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        for target, _line in imported_names(tree, name, path.name == "__init__.py"):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            while target:
                if target != name and not name.startswith(target + "."):
                    edges.add(target)
                target = target.rpartition(".")[0]
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# ----- engine-kind comparisons -----------------------------------------------------------
def names_an_engine(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in KIND_NAMES
    if isinstance(node, ast.Name):
        return node.id in KIND_NAMES or node.id.removeprefix("FLAVOR_") in KIND_NAMES
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value in KIND_VALUES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(names_an_engine(item) for item in node.elts)
    return False


def engine_comparisons(source: str) -> list[tuple[int, str]]:
    """(line, code) of each comparison, match case or dict key naming one engine."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(
            names_an_engine(side) for side in (node.left, *node.comparators)
        ):
            found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Dict) and any(names_an_engine(key) for key in node.keys):
            found.append((node.lineno, ast.unparse(node)[:80]))
        elif isinstance(node, ast.MatchValue) and names_an_engine(node.value):
            found.append((node.lineno, f"case {ast.unparse(node.value)}"))
    return found


def comparing_modules() -> dict[str, list[tuple[int, str]]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if not rel.startswith(ENGINES):
            hits = engine_comparisons(path.read_text())
            if hits:
                out[rel] = hits
    return out


# ----- tests -----------------------------------------------------------------------------
def test_no_import_circle_in_the_package() -> None:
    found = circles(import_graph(package_modules()))
    assert not found, f"import circles (module-level and function-local imports): {found}"


def test_no_module_outside_engines_compares_an_engine_kind() -> None:
    offenders = {path: hits for path, hits in comparing_modules().items() if path not in ALLOWED}
    assert not offenders, (
        "ask the engine's profile (controlplane.engines.profile_for) instead of comparing"
        f" engine kinds: {offenders}"
    )


def test_the_allowlist_is_not_stale() -> None:
    comparing = comparing_modules()
    stale = [path for path in ALLOWED if path not in comparing]
    assert not stale, f"these no longer compare engine kinds: drop them from ALLOWED: {stale}"


def test_adapters_never_import_installers() -> None:
    """A command builder is pure: it never loads venv building or checkpoint writing."""
    graph = import_graph(package_modules())
    installers = {"controlplane.local.venv", "controlplane.local.tiny_model"}
    for adapter in ("base", "sglang", "vllm", "trtllm", "simulator"):
        loaded = reachable(graph, f"controlplane.engines.{adapter}")
        assert not loaded & installers, (adapter, sorted(loaded & installers))


def test_the_comparison_finder_sees_each_form() -> None:
    source = """
if topo.engine is EngineKind.VLLM: pass
if flavor == "sglang": pass
if kind in (EngineKind.SIM, EngineKind.TRTLLM): pass
if engine == TRTLLM or name != FLAVOR_VLLM: pass
STEP = {EngineKind.SGLANG: 1.0}
match kind:
    case EngineKind.SGLANG: pass
if layout.engine is other.engine: pass
if runtime == "real": pass
"""
    lines = sorted(line for line, _code in engine_comparisons(source))
    assert lines == [2, 3, 4, 5, 5, 6, 8]  # not 9 (two variables) nor 10 (not an engine)


def test_the_circle_finder_sees_function_local_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "controlplane" / "demo"
    pkg.mkdir(parents=True)
    (tmp_path / "controlplane" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from controlplane.demo import b\n")
    (pkg / "b.py").write_text("def f():\n    from controlplane.demo.a import x\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from controlplane.demo import a\n"
    )
    graph = import_graph(package_modules(tmp_path / "controlplane"))
    assert circles(graph) == [["controlplane.demo.a", "controlplane.demo.b"]]
    assert "controlplane.demo.a" not in graph["controlplane.demo.c"]  # TYPE_CHECKING only


# Rooms below engines/ (DESIGN.md: engines -> capacity / router -> catalog / local /
# settings -> errors; spec beside them): engines/ asks them, never the reverse.
BELOW_ENGINES = ("capacity", "catalog", "local", "router", "spec", "settings", "errors")


def test_rooms_below_engines_never_import_them() -> None:
    graph = import_graph(package_modules())
    upward = {
        module: sorted(t for t in targets if t.startswith("controlplane.engines"))
        for module, targets in graph.items()
        if module.split(".")[1:2] and module.split(".")[1] in BELOW_ENGINES
    }
    upward = {module: targets for module, targets in upward.items() if targets}
    assert not upward, f"modules below engines/ import it (pass what they need instead): {upward}"
