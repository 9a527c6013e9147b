"""The package's layers hold: the import-linter contracts in pyproject.toml pass,
a wrong-way import breaks them, and no motionwatch module imports itself back
through others, counting the imports inside functions too (a lazy import that
closes a cycle is still a cycle: it only moves the failure to run time)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "motionwatch"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the checkout at `root` (its pyproject.toml, its package)."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_the_layer_contracts_are_kept():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_an_import_against_the_layers_breaks_the_contract(tmp_path: Path):
    """The contract can fail: config importing the command line is refused."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copytree(PACKAGE, tmp_path / "motionwatch", ignore=shutil.ignore_patterns("__pycache__"))
    wrong = tmp_path / "motionwatch" / "config" / "plain.py"
    wrong.write_text(wrong.read_text() + "\n\ndef _late():\n    from motionwatch.cli.args import common\n"
                     "    return common\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "motionwatch.config.plain -> motionwatch.cli.args" in proc.stdout


def test_every_top_level_module_is_in_a_layer():
    """A new motionwatch/foo.py outside every layer would be checked by no contract."""
    contract = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    in_layers = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    top = {p.stem if p.suffix == ".py" else p.name for p in PACKAGE.iterdir()
           if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.stem not in ("__init__", "__main__")}
    assert top - in_layers == set(), "not in any layer of pyproject.toml's contract"
    assert in_layers - top == set(), "named in the contract but not in the package"


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The motionwatch modules `path` imports anywhere in its body (functions too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in modules:
                    out.add(sub)          # `from motionwatch.review import api`: the submodule
                elif node.module in modules:
                    out.add(node.module)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a self-import
    (Tarjan's algorithm, iterative: the graph is small but recursion would hide the path)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    return {name: imports_of(path, set(files)) for name, path in files.items()}


def test_no_import_cycle_among_motionwatch_modules():
    graph = import_graph()
    assert len(graph) > 50 and graph["motionwatch.cli"], "the import graph was not read"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_closed_inside_a_function(tmp_path: Path):
    """The check can fail: an import inside a function that closes the shape of the
    old cli <-> commands cycle is read and found."""
    graph = import_graph()
    lazy = tmp_path / "args.py"
    lazy.write_text("def build():\n    from motionwatch import cli\n    return cli\n")
    graph["motionwatch.cli.args"] = imports_of(lazy, set(graph))
    assert graph["motionwatch.cli.args"] == {"motionwatch.cli"}
    assert any({"motionwatch.cli", "motionwatch.cli.args"} <= set(c) for c in cycles(graph))
