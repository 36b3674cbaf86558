"""docs/architecture.md is the map of the code, and the client's imports follow its layers.

- every module file of ``server/``, ``client/`` and ``common/`` is named in architecture.md (a
  table row names ``engine/weights.py``, or a package and its modules: ``engine/directions/``
  (``specs``, ``gaussian``); a package's ``__init__.py`` is named with its folder);
- the client has no import loop, counting every import: at module level, inside functions, under
  ``TYPE_CHECKING``, ``importlib.import_module`` / ``__import__`` with a constant name, and the
  names ``safety_landscape.client`` loads on first use (its ``_EXPORTS`` table). Importing a
  module of a package from outside it runs the package's ``__init__``, so that counts as an
  import of the package too (except the top ``safety_landscape.client``, which only loads names
  on first use);
- no client module imports one that architecture.md's "Client layers" place above it;
- no client module is longer than 450 lines (split it by concern first).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
SIDES = {"server": "## Server", "client": "## Client", "common": "## Shared"}
PACKAGE = "safety_landscape.client"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def _named(section: str) -> set[str]:
    """The module paths a section names: `a/b.py`, a package `a/` (its __init__.py), and a package
    with its modules, `a/` (`x`, `y`) -> a/x.py, a/y.py."""
    names = set()
    for token in re.findall(r"`([\w./]+)`", section):
        if token.endswith(".py"):
            names.add(token)
        elif token.endswith("/"):
            names.add(token + "__init__.py")
    for folder, group in re.findall(r"`([\w/]+/)`\s*\(([^)]*)\)", section):
        names.update(f"{folder}{m}.py" for m in re.findall(r"`(\w+)`", group))
    return names


def _modules(side: str) -> list[str]:
    base = ROOT / side
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_named_in_the_architecture():
    text = DOC.read_text(encoding="utf-8")
    for side, heading in SIDES.items():
        # A path is relative to the side's package (common's table spells out common/); the side's
        # own __init__.py is its section.
        named = {n.removeprefix(f"{side}/") for n in _named(_section(text, heading))} | {"__init__.py"}
        missing = [m for m in _modules(side) if m not in named]
        assert not missing, f"docs/architecture.md ({heading}) does not name {side}/ modules: {', '.join(missing)}"


def test_no_client_module_is_over_450_lines():
    long = {rel: n for rel in _modules("client")
            if (n := len((ROOT / "client" / rel).read_text(encoding="utf-8").splitlines())) > 450}
    assert not long, f"client modules over 450 lines: {long}"


# -- the client's import graph -----------------------------------------------------------------

def _module_name(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


MODULES = {_module_name(rel): rel for rel in _modules("client")}
PACKAGES = {name for name, rel in MODULES.items() if rel.endswith("__init__.py")}


def _absolute(importer: str, level: int, name: str | None) -> str:
    base = importer if importer in PACKAGES else importer.rpartition(".")[0]
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{name}" if name else base


def _imported(importer: str, tree: ast.Module) -> Iterator[str]:
    """Every client module ``importer`` names in an import (see the module docstring)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(importer, node.level, node.module) if node.level else node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in MODULES else base
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and _called(node) in ("import_module", "__import__"):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
                dots = len(name) - len(name.lstrip("."))
                yield _absolute(importer, dots, name[dots:]) if dots else name
            elif importer != PACKAGE:
                raise AssertionError(f"{MODULES[importer]}: a dynamic import of a computed name; import it by name")
    if importer == PACKAGE:  # the names loaded on first use
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
                for const in ast.walk(node.value):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str) and const.value.startswith("."):
                        yield _absolute(importer, 1, const.value[1:])


def _called(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id if isinstance(node.func, ast.Name) else ""


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for importer, rel in MODULES.items():
        tree = ast.parse((ROOT / "client" / rel).read_text(encoding="utf-8"))
        for target in _imported(importer, tree):
            while target.startswith(PACKAGE + ".") and target not in MODULES:
                target = target.rpartition(".")[0]  # a name inside a module
            if target not in MODULES or target == importer:
                continue
            edges[importer].add(target)
            parts = target.split(".")
            for i in range(len(PACKAGE.split(".")) + 1, len(parts)):  # the packages' __init__ it runs
                package = ".".join(parts[:i])
                if package in PACKAGES and not importer.startswith(package + "."):
                    edges[importer].add(package)
    return edges


def _loops(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(MODULES[m] for m in group))

    for v in edges:
        if v not in index:
            visit(v)
    return groups


def _layers() -> dict[str, int]:
    """client module path -> its layer (0 lowest), from architecture.md's "Client layers" list."""
    section = _section(DOC.read_text(encoding="utf-8"), "## Client layers")
    layers: dict[str, int] = {}
    for line in section.splitlines():
        found = re.match(r"(\d+)\. ", line)
        if not found:
            continue
        for rel in sorted(_named(line)):
            assert rel not in layers, f"{rel} is placed in two client layers"
            layers[rel] = int(found.group(1))
    return layers


def test_the_client_has_no_import_loop():
    loops = _loops(_graph())
    assert not loops, "import loops in client/ (each group imports itself round):\n" + "\n".join(map(", ".join, loops))


def test_every_client_module_has_a_layer_and_imports_only_downward():
    layers = _layers()
    unplaced = sorted(set(MODULES.values()) - set(layers))
    assert not unplaced, f"docs/architecture.md's client layers do not place: {', '.join(unplaced)}"
    stale = sorted(set(layers) - set(MODULES.values()))
    assert not stale, f"docs/architecture.md's client layers name modules that do not exist: {', '.join(stale)}"
    upward = [f"{MODULES[a]} (layer {layers[MODULES[a]]}) imports {MODULES[b]} (layer {layers[MODULES[b]]})"
              for a, targets in sorted(_graph().items()) for b in sorted(targets)
              if layers[MODULES[b]] > layers[MODULES[a]]]
    assert not upward, "imports running up the client's layers:\n" + "\n".join(upward)


def test_the_checks_see_lazy_and_dynamic_imports():
    """The graph counts what a plain reading of the top-level imports misses."""
    edges = _graph()
    assert f"{PACKAGE}.store" in edges[PACKAGE]  # the lazy table of the public API
    tree = ast.parse("import importlib\ndef f():\n    from .records import Series\n    importlib.import_module('.store', 'x')\n")
    found = set(_imported(f"{PACKAGE}.errors", tree))
    assert {f"{PACKAGE}.records", f"{PACKAGE}.store"} <= found
    looped = {"a": {"b"}, "b": {"a"}, "c": set()}
    original = dict(MODULES)
    MODULES.update({"a": "a.py", "b": "b.py", "c": "c.py"})
    try:
        assert _loops(looped) == [["a.py", "b.py"]]
    finally:
        MODULES.clear()
        MODULES.update(original)
