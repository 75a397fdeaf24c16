"""The package's import structure, read from the source with :mod:`ast` (nothing is imported).

Three rules (issue 14, "Acceptance"):

1. ``spikerobust/robust/`` is model-agnostic: it never imports ``spikerobust.nn``.
2. No module imports a private name (``_x``, dunders excepted) from another module of the package.
   A private *module* (``_checks``, ``datasets/_base``) is package-internal and may be imported
   from inside the package; the names taken from it must still be public.
3. No import circle between modules. Every ``import``/``from ... import`` statement counts, at any
   depth: module level, inside functions, and under ``if TYPE_CHECKING:``. An import hidden in a
   function still ties the two modules together, so it cannot be used to dodge the rule.

How the graph is built: ``from a.b import c`` is an edge to the module ``a.b.c`` when that is a
module of the package, else to ``a.b`` (a package means its ``__init__``). Parent packages that
Python runs on the way (``spikerobust/__init__``, ``spikerobust/robust/__init__``) are not edges,
otherwise every re-exporting ``__init__`` would close a circle with its own submodules.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

PACKAGE = "spikerobust"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Private-name imports still tolerated, ``(file, name)``: none; add none.
KNOWN_PRIVATE_IMPORTS: set = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> Dict[str, Path]:
    """Every module of the package, ``{dotted name: file}``."""
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports_of(name: str, path: Path) -> Iterator[Tuple[int, str, Tuple[str, ...]]]:
    """``(line, imported module, names taken from it)`` for each import statement in the file."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, tuple(a.name for a in node.names)


def _edges_of(target: str, names: Tuple[str, ...], modules: Dict[str, Path]) -> List[str]:
    if not names:
        return [target] if target in modules else []
    out = []
    for n in names:
        sub = f"{target}.{n}"
        if sub in modules:
            out.append(sub)
        elif target in modules:
            out.append(target)
    return sorted(set(out))


def import_graph() -> Dict[str, Set[str]]:
    """Module import graph of the package (every import statement, see the module docstring)."""
    modules = package_modules()
    graph: Dict[str, Set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for _, target, names in imports_of(name, path):
            graph[name].update(e for e in _edges_of(target, names, modules) if e != name)
    return graph


def strongly_connected(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Tarjan's algorithm; the components with more than one module (the import circles)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_graph_sees_known_edges():
    """The parser resolves relative, absolute and in-function imports (guards against a vacuous pass)."""
    graph = import_graph()
    assert "spikerobust.functional.lsnn" in graph["spikerobust.nn.lsnn"]
    assert "spikerobust.functional.surrogate" in graph["spikerobust.functional.lsnn_core"]
    assert "spikerobust.functional.lsnn_fused" in graph["spikerobust.functional.lsnn"]  # from . import lsnn_fused
    assert "spikerobust.functional._lsnn_event_kernels" in graph["spikerobust.functional.lsnn_event"]  # in a function
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_robust_does_not_import_nn():
    bad = []
    for name, path in package_modules().items():
        if not name.startswith(f"{PACKAGE}.robust"):
            continue
        for line, target, names in imports_of(name, path):
            hit = [target] if target == f"{PACKAGE}.nn" or target.startswith(f"{PACKAGE}.nn.") else []
            if target == PACKAGE and "nn" in names:
                hit = [f"{PACKAGE}.nn"]
            bad += [f"{path.relative_to(ROOT.parent)}:{line} imports {t}" for t in hit]
    assert not bad, "robust/ must stay model-agnostic:\n" + "\n".join(bad)


def test_no_private_names_across_modules():
    modules = package_modules()
    bad = []
    for name, path in modules.items():
        for line, target, names in imports_of(name, path):
            if not target.startswith(PACKAGE):
                continue
            for n in names:
                rel = str(path.relative_to(ROOT.parent))
                if (rel, n) in KNOWN_PRIVATE_IMPORTS:
                    continue
                if _is_private(n) and f"{target}.{n}" not in modules:  # a private module is allowed
                    bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports {n} from {target}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_no_import_circles():
    circles = strongly_connected(import_graph())
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)
