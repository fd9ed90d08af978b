"""The import graph of txamqp091 reads one way: core <- client <- adapters.

The graph is built from the source with :mod:`ast`, so it holds every import
statement wherever it stands: at module level, under ``if TYPE_CHECKING:`` and
inside functions (the lazy imports that hide a cycle at run time). The rules:

* no cycles;
* ``core`` imports only the standard library, ``core`` and the two leaf modules
  ``exceptions`` and ``types`` (which themselves import only the standard
  library), so the core stays stdlib-only all the way down;
* the top-level modules (``params``, ``message``, ...) import only the standard
  library, ``core`` and each other;
* ``client`` imports only the standard library, ``core``, ``client`` and the
  top-level modules ``params``, ``message``, ``types``, ``exceptions``, ``retry``
  and ``constants``;
* an adapter (any other subpackage: ``twisted``, ``tornado``, ...) never imports
  another adapter, except that a facade in ``FACADES`` (``blocking``) is a skin
  over one adapter's public package: it imports that package itself, never its
  submodules, and never ``client`` (it is not a third implementation);
* ``txamqp091.testing`` imports no adapter.

``KNOWN_VIOLATIONS`` lists the imports that break a rule today and are being
removed on other branches; an entry whose import is gone fails the test, so the
list only shrinks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = "txamqp091"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: Leaf modules the core may import: they import only the standard library.
CORE_LEAVES = frozenset({f"{PACKAGE}.exceptions", f"{PACKAGE}.types"})
#: Top-level modules client/ may import.
CLIENT_MAY_IMPORT = frozenset(
    f"{PACKAGE}.{name}"
    for name in ("params", "message", "types", "exceptions", "retry", "constants", "validation")
)
#: Top-level modules behind an optional extra, and the outside package each may import
#: (only inside a function, so importing txamqp091 never needs it): the metrics extra.
OPTIONAL_EXTRAS = {f"{PACKAGE}.metrics": frozenset({"prometheus_client"})}
#: Subpackages that are layers of their own; every other subpackage is an adapter.
NOT_ADAPTERS = frozenset({"core", "client", "testing"})
#: Facades built on one adapter's public API: facade -> the adapter it wraps.
FACADES = {"blocking": "tornado"}

#: (importer, imported) edges that break a rule today, each removed on another branch.
#: The lead empties this list as those branches merge; nothing may be added to it.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}

Graph = Mapping[str, frozenset[str]]


def module_files(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    return modules


def imported_names(tree: ast.AST, package: str) -> Iterable[tuple[str, list[str]]]:
    """(module, names imported from it) for every import statement anywhere in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, [alias.name for alias in node.names]


def build_graph(root: Path) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """The internal import graph, and each module's external top-level imports."""
    modules = module_files(root)
    internal: dict[str, frozenset[str]] = {}
    external: dict[str, frozenset[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        inside: set[str] = set()
        outside: set[str] = set()
        for module, names in imported_names(ast.parse(path.read_text()), package):
            if module.split(".")[0] != root.name:
                outside.add(module.split(".")[0])
                continue
            # "from pkg import sub" imports the submodule; "from mod import name" the module.
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            if len(targets) < len(names) or not names:
                targets.append(module)
            for target in targets:
                while target not in modules:  # e.g. "import pkg.mod.attr" (not a module)
                    target = target.rpartition(".")[0]
                if target != name:
                    inside.add(target)
        internal[name] = frozenset(inside)
        external[name] = frozenset(outside)
    return internal, external


def without(graph: Graph, edges: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    drop = set(edges)
    return {m: frozenset(t for t in ts if (m, t) not in drop) for m, ts in graph.items()}


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer(module: str) -> str:
    """``core``, ``client``, ``testing``, ``top`` or ``adapter:<name>``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in NOT_ADAPTERS:
        return parts[1]
    if len(parts) == 1 or (len(parts) == 2 and not (ROOT / parts[1]).is_dir()):
        return "top"
    return f"adapter:{parts[1]}"


def layer_violations(internal: Graph, external: Graph) -> list[tuple[str, str, str]]:
    """(importer, imported, rule broken) for every import against the rules above."""
    stdlib = sys.stdlib_module_names
    found = []
    for module in sorted(internal):
        own = layer(module)
        for target in sorted(internal[module]):
            other = layer(target)
            rule = None
            if own == "core" and other != "core" and target not in CORE_LEAVES:
                rule = "core imports only stdlib, core, exceptions and types"
            elif module in CORE_LEAVES:
                rule = "exceptions and types import only the standard library"
            elif own == "top" and other not in ("top", "core"):
                rule = "top-level modules import only stdlib, core and each other"
            elif own == "client" and other not in ("core", "client"):
                if target not in CLIENT_MAY_IMPORT:
                    rule = "client imports only core, client and the listed top-level modules"
            elif own.startswith("adapter:") and own[8:] in FACADES and other == "client":
                rule = "a facade uses its adapter's public API, never client/"
            elif own.startswith("adapter:") and other.startswith("adapter:") and other != own:
                wrapped = FACADES.get(own[8:])
                if target != f"{PACKAGE}.{wrapped}":
                    rule = "adapters never import each other (a facade: only its adapter's package)"
            elif own == "testing" and other.startswith("adapter:"):
                rule = "txamqp091.testing imports no adapter"
            if rule is not None:
                found.append((module, target, rule))
        if own in ("core", "top", "client") or module in CORE_LEAVES:
            allowed = stdlib | OPTIONAL_EXTRAS.get(module, frozenset())
            for name in sorted(external[module] - allowed):
                found.append((module, name, f"{own} imports only the standard library outside"))
    return found


INTERNAL, EXTERNAL = build_graph(ROOT)


def test_the_graph_sees_every_kind_of_import() -> None:
    # Module level, relative and absolute.
    assert "txamqp091.core.spec" in INTERNAL["txamqp091.core.channel"]
    assert "txamqp091.core.spec" in INTERNAL["txamqp091"]
    # Under TYPE_CHECKING (the surviving channel names the plain one only for mypy).
    assert "txamqp091.client.channel" in INTERNAL["txamqp091.client.recovering"]
    assert "twisted" in EXTERNAL["txamqp091.twisted.protocol"]
    assert "struct" in EXTERNAL["txamqp091.core.connection"]


def test_function_level_and_type_checking_imports_are_edges(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import b\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .sub import b\n"
        "def f():\n    import pkg.c\n    from .sub.b import thing\n"
    )
    (package / "sub" / "b.py").write_text("from .. import a\nthing = 1\n")
    (package / "c.py").write_text("import numpy\n")
    internal, external = build_graph(package)
    assert internal["pkg.a"] == {"pkg.sub.b", "pkg.c"}
    assert internal["pkg.sub"] == {"pkg.sub.b"}
    assert internal["pkg.sub.b"] == {"pkg.a"}
    assert external["pkg.c"] == {"numpy"} and external["pkg.a"] == {"typing"}
    assert cycles(internal) == [["pkg.a", "pkg.sub.b"]]


def test_the_rules_catch_each_kind_of_violation() -> None:
    graph = {
        "txamqp091.core.x": frozenset({"txamqp091.client.y", "txamqp091.exceptions"}),
        "txamqp091.client.y": frozenset({"txamqp091.twisted.z", "txamqp091.params"}),
        "txamqp091.twisted.z": frozenset({"txamqp091.tornado.w"}),
        "txamqp091.tornado.w": frozenset(),
        "txamqp091.testing.v": frozenset({"txamqp091.tornado.w"}),
        "txamqp091.params": frozenset({"txamqp091.client.y"}),
        "txamqp091.exceptions": frozenset({"txamqp091.types"}),
    }
    external: dict[str, frozenset[str]] = {m: frozenset() for m in graph}
    external["txamqp091.core.x"] = frozenset({"twisted"})
    found = {(a, b) for a, b, _ in layer_violations(graph, external)}
    assert found == {
        ("txamqp091.core.x", "txamqp091.client.y"),
        ("txamqp091.core.x", "twisted"),
        ("txamqp091.client.y", "txamqp091.twisted.z"),
        ("txamqp091.twisted.z", "txamqp091.tornado.w"),
        ("txamqp091.testing.v", "txamqp091.tornado.w"),
        ("txamqp091.params", "txamqp091.client.y"),
        ("txamqp091.exceptions", "txamqp091.types"),
    }


def test_no_import_cycles() -> None:
    assert cycles(without(INTERNAL, KNOWN_VIOLATIONS)) == []


def test_imports_follow_the_layers() -> None:
    found = [v for v in layer_violations(INTERNAL, EXTERNAL) if v[:2] not in KNOWN_VIOLATIONS]
    assert found == []


def test_the_layers_are_the_ones_named() -> None:
    assert layer("txamqp091") == layer("txamqp091.message") == "top"
    assert layer("txamqp091.core.spec") == "core"
    assert layer("txamqp091.client.channel") == "client"
    assert layer("txamqp091.twisted.protocol") == "adapter:twisted"
    assert layer("txamqp091.tornado") == "adapter:tornado"
    assert layer("txamqp091.blocking.channel") == "adapter:blocking"
    assert {layer(m) for m in INTERNAL if layer(m).startswith("adapter:")} >= {
        "adapter:twisted",
        "adapter:tornado",
    }


@pytest.mark.parametrize("edge", sorted(KNOWN_VIOLATIONS), ids="->".join)
def test_known_violations_still_exist(edge: tuple[str, str]) -> None:
    importer, imported = edge
    assert imported in INTERNAL.get(importer, frozenset()), (
        f"{importer} no longer imports {imported}: remove the entry from "
        "KNOWN_VIOLATIONS in tests/test_layering.py"
    )
