"""The package's architecture holds: subpackages of bounded size, ``__all__`` in every public
module, no private names imported across subpackages, no import cycles, and old import
paths of moved modules still working."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vvc_batch"


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path, top_level_only: bool) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for each import of ``name``'s file;
    ``top_level_only``: the imports that run when the module is imported (not those inside
    functions, which run when called)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # also imports under top-level if/try blocks
        stack, nodes = list(tree.body), []
        while stack:
            node = stack.pop()
            nodes.append(node)
            if isinstance(node, (ast.If, ast.Try)):
                stack.extend(node.body + node.orelse + getattr(node, "finalbody", [])
                             + [h for hd in getattr(node, "handlers", []) for h in hd.body])
    out = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.startswith("vvc_batch")]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            if mod.startswith("vvc_batch"):
                out += [(mod, a.name) for a in node.names]
    return out


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def test_subpackages_and_sizes():
    top = [p for p in PACKAGE.glob("*.py")]
    assert len(top) <= 12, sorted(p.name for p in top)
    subs = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert {"systems", "env", "power_flow", "vector", "training", "cluster", "viz", "bench"} <= subs
    for folder in PACKAGE.rglob("*"):
        if folder.is_dir() and (folder / "__init__.py").is_file() and folder != PACKAGE:
            assert len(list(folder.glob("*.py"))) <= 15, folder.name


@pytest.mark.parametrize("name", [n for n in MODULES if not n.rpartition(".")[2].startswith("_")])
def test_public_module_has_all(name):
    tree = ast.parse(MODULES[name].read_text())
    names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    assert "__all__" in names, f"{name} has no __all__"


def test_no_private_names_across_subpackages():
    bad = []
    for name, path in MODULES.items():
        for mod, taken in _imports(name, path, top_level_only=False):
            crosses = _subpackage(mod) != _subpackage(name)
            private = (taken or "").startswith("_") or any(p.startswith("_") and p != "__init__"
                                                            for p in mod.split(".")[1:])
            if crosses and private and mod != "vvc_batch._moved":
                bad.append(f"{name} imports {taken or mod} from {mod}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    """Module-level imports between the package's modules form no cycle."""
    graph = {}
    for name, path in MODULES.items():
        deps = set()
        for mod, taken in _imports(name, path, top_level_only=True):
            if f"{mod}.{taken}" in MODULES:  # `from package import module`
                deps.add(f"{mod}.{taken}")
            elif mod in MODULES:
                deps.add(mod)
        graph[name] = {d for d in deps if d != name}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle.extend(trail[trail.index(dep):] + [node, dep] if dep in trail else [node, dep])
                return True
            if state.get(dep) is None and visit(dep, trail + [node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, []):
            break
    assert not cycle, " -> ".join(cycle)


@pytest.mark.parametrize("old, new", [
    ("vvc_batch.wrappers", "vvc_batch.env.wrappers"),
    ("vvc_batch.sb3", "vvc_batch.training.sb3"),
    ("vvc_batch.batched.solver", "vvc_batch.power_flow.batched.solver"),
])
def test_moved_modules_keep_their_old_import_paths(old, new):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)


def test_functions_are_short_and_take_few_positional_arguments():
    """No function (numba kernels included) over 150 lines or with more than 20 positional
    parameters: groups of arrays travel as named structures."""
    bad = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                positional = len(node.args.posonlyargs) + len(node.args.args)
                if lines > 150 or positional > 20:
                    bad.append(f"{name}.{node.name}: {lines} lines, {positional} positional parameters")
    assert not bad, "\n".join(bad)


def test_the_distribution_ships_every_subpackage():
    """``pip install .`` (not editable) installs the packages pyproject.toml lists: every
    package of the source tree must be there, or the installed copy fails to import it
    wherever the source tree is not on the path."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    in_tree = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert in_tree - listed == set(), f"packages missing from pyproject.toml: {sorted(in_tree - listed)}"
    assert listed - in_tree == {"vvc_batch.circuits"}  # the circuits folder, mapped in
