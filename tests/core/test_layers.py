"""The core's layers: every module of workbench.core sits in one layer of the import-linter contract in
pyproject.toml, imports only layers below its own (or its own), and no import cycle exists between modules.

Imports are read with ``ast`` from the source, those inside functions included, so an import written inside
a function to get round a cycle counts as what it is.
"""

from __future__ import annotations

import ast
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = "workbench.core"


def contract_layers(pyproject: Path = REPO / "pyproject.toml") -> list[list[str]]:
    """The layers of the core's ``layers`` contract, highest first; each a list of sibling names."""
    config = tomllib.loads(pyproject.read_text())
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "layers" and contract.get("containers") == [CORE]:
            return [[name.strip() for name in layer.split("|")] for layer in contract["layers"]]
    raise AssertionError("pyproject.toml has no layers contract for workbench.core")


def module_files(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """``{dotted module name: (file, is_package)}`` of every module under ``root`` (the package folder)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join([package, *parts])] = (path, is_pkg)
    return out


def imports_of(modules: dict[str, tuple[Path, bool]], package: str) -> dict[str, set[tuple[str, int]]]:
    """``{module: {(imported module of the same package, line)}}``, function-level imports included.

    ``from .x import name`` counts as an import of ``x.name`` when that is a module, else of ``x``.
    """
    edges: dict[str, set[tuple[str, int]]] = {m: set() for m in modules}
    for mod, (path, is_pkg) in modules.items():
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != mod and (target == package or target.startswith(package + ".")):
                    edges[mod].add((target, node.lineno))
    return edges


def layer_of(module: str, package: str, layers: list[list[str]]) -> tuple[int, str] | None:
    """``(rank, sibling)`` of ``module``: rank 0 is the highest layer; None for the package itself or a
    module in no layer."""
    rest = module[len(package) + 1:].split(".")[0] if module != package else ""
    for rank, siblings in enumerate(layers):
        if rest in siblings:
            return rank, rest
    return None


def layer_violations(edges, package: str, layers: list[list[str]]) -> list[str]:
    """Imports that go up the layers or across independent siblings, and modules in no layer."""
    problems = []
    for mod in sorted(edges):
        if mod == package:
            continue
        own = layer_of(mod, package, layers)
        if own is None:
            problems.append(f"{mod}: in no layer of the contract")
            continue
        for target, line in sorted(edges[mod]):
            other = layer_of(target, package, layers)
            if other is None:
                if target != package:
                    problems.append(f"{mod}:{line} imports {target}, which is in no layer")
            elif other[0] < own[0]:
                problems.append(f"{mod}:{line} imports {target} from a higher layer")
            elif other[0] == own[0] and other[1] != own[1]:
                problems.append(f"{mod}:{line} imports {target}, an independent sibling layer")
    return problems


def import_cycles(edges) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    graph = {m: sorted({t for t, _ in ts if t in edges}) for m, ts in edges.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def core_edges():
    return imports_of(module_files(REPO / "workbench" / "core", CORE), CORE)


def test_every_core_module_is_in_a_layer_and_imports_only_below_it():
    edges = core_edges()
    assert len(edges) > 30 and any(line for ts in edges.values() for _, line in ts)
    assert layer_violations(edges, CORE, contract_layers()) == []


def test_no_import_cycle_in_the_core():
    assert import_cycles(core_edges()) == []


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


def test_the_checks_find_an_upward_import_and_a_cycle_hidden_in_a_function(tmp_path):
    """The checkers fail where they should: a low layer importing a high one inside a function, and
    two modules importing each other."""
    root = _package(tmp_path, {
        "low/a.py": "def f():\n    from ..high import b\n",
        "high/b.py": "from ..low import a\n",
        "high/c.py": "from . import d\n",
        "high/d.py": "import pkg.high.c\n",
    })
    edges = imports_of(module_files(root, "pkg"), "pkg")
    layers = [["high"], ["low"]]
    assert layer_violations(edges, "pkg", layers) == ["pkg.low.a:2 imports pkg.high.b from a higher layer"]
    assert sorted(import_cycles(edges)) == [["pkg.high.b", "pkg.low.a"], ["pkg.high.c", "pkg.high.d"]]
    assert layer_violations(edges, "pkg", [["high"]]) == [
        "pkg.high.b:1 imports pkg.low.a, which is in no layer",
        "pkg.low: in no layer of the contract", "pkg.low.a: in no layer of the contract"]


@pytest.mark.parametrize("name", ["enhance", "measure"])
def test_enhance_and_measure_are_independent_siblings(name):
    siblings = next(layer for layer in contract_layers() if name in layer)
    assert sorted(siblings) == ["enhance", "measure"]


def test_one_downmix_and_one_resampler():
    """Whole-array resampling and channel averaging go through audio_io's ``resample`` and ``downmix``, so a
    multichannel file is measured, drawn and scored the same way everywhere."""
    offenders = []
    for path in sorted((REPO / "workbench").rglob("*.py")):
        if path.name == "audio_io.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "soxr.resample(" in line or ".mean(axis=1)" in line:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []
