"""The project's shape: no import cycles in any of its packages (mlpscale, data_prep, benchmarks), no FFCV on
the converter's path, one format owner."""
from __future__ import annotations

import ast
import os
import re

import pytest

from util import ROOT

PACKAGES = ("mlpscale", "data_prep", "benchmarks")


def _modules(root: str = ROOT, packages=PACKAGES) -> dict[str, str]:
    """{dotted name: file} of every module of the packages (packages under their own name)."""
    out = {}
    for pkg in packages:
        for dirpath, _, files in os.walk(os.path.join(root, pkg)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), root)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, f)
    return out


def _with_packages(target: str, loaded: str) -> set[str]:
    """`target` and the packages above it that importing it runs, short of `loaded` and its parents."""
    parts = target.split(".")
    skip = len(loaded.split(".")) if loaded else 0
    return {".".join(parts[:i]) for i in range(skip + 1, len(parts) + 1)}


def _imports(name: str, path: str, modules: dict) -> set[str]:
    """Project modules that `name` imports anywhere in its file (also inside functions).

    `import a.b.c` runs a/__init__.py, a/b/__init__.py and a/b/c.py, so it counts as importing all
    three; a relative import starts from a package of the importer, loaded already, so only the
    packages below that one count.
    """
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            for a in node.names:
                found |= _with_packages(a.name, "")
        elif isinstance(node, ast.ImportFrom):
            base, anchor = node.module or "", ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                base = ".".join([anchor] + ([base] if base else []))
            for a in node.names:
                # `from pkg import sub` is an import of the submodule, `from pkg import name` of pkg
                target = f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                found |= _with_packages(target, anchor)
    return {m for m in found if m in modules and m != name}


def _cycle(modules: dict, start: str) -> list[str] | None:
    """An import cycle reachable from the modules of package `start`, or None."""
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n, stack + [n])
                if found:
                    return found
        state[m] = "done"
        return None

    for m in sorted(graph):
        if (m == start or m.startswith(start + ".")) and m not in state:
            found = visit(m, [m])
            if found:
                return found
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    modules = _modules()
    assert package in modules and any(m.startswith(package + ".") for m in modules)
    cycle = _cycle(modules, package)
    if cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle))
    assert "data_prep.beton" not in modules and "data_prep.writer" not in modules  # mlpscale.beton owns it


def test_cycle_check_sees_imports_inside_functions(tmp_path):
    """A circle closed by a function-level import (as a suite module importing a helper from the module that
    dispatches to it) is a circle: the check must catch it."""
    pkg = tmp_path / "benchmarks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "suites.py").write_text("def run():\n    from .tiered import suite\n    return suite()\n\n"
                                   "def _root():\n    return '/tmp'\n")
    (pkg / "tiered.py").write_text("def suite():\n    from .suites import _root\n    return _root()\n")
    modules = _modules(str(tmp_path), ("benchmarks",))
    assert _cycle(modules, "benchmarks") == ["benchmarks.suites", "benchmarks.tiered", "benchmarks.suites"]
    (pkg / "tiered.py").write_text("def suite():\n    return '/tmp'\n")
    assert _cycle(_modules(str(tmp_path), ("benchmarks",)), "benchmarks") is None




def test_the_library_does_not_locate_the_checkout():
    """mlpscale is what a user installs: no module of it builds paths from the repository checkout (the
    developer benchmarks, which do, live in benchmarks/)."""
    found = []
    for path in _modules(ROOT, ("mlpscale",)).values():
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if re.search(r"\bREPO\b", line) or "dirname(dirname" in line or "dirname(os.path.dirname" in line:
                    found.append(f"{path}:{i}")
    assert not found, found


def test_every_test_file_is_unit_or_integration():
    """`make test-fast` runs tests/unit and `make test` both folders: a test file elsewhere would never run."""
    tests = os.path.join(ROOT, "tests")
    stray = sorted(f for f in os.listdir(tests) if f.startswith("test_") and f.endswith(".py"))
    assert not stray, (f"tests/{stray[0]}: move it to tests/unit/ (in-process, seconds) or tests/integration/ "
                       f"(processes, faults, studies)")


MAX_MODULE_LINES = 600


def test_library_modules_stay_small():
    """One concern per module: no module of the library or the converter grows past ~600 lines (a module
    that does is holding two concerns and should be split, as sweep/ and beton/io/layout were)."""
    long = {}
    for name, path in _modules(ROOT, ("mlpscale", "data_prep")).items():
        with open(path) as f:
            n = sum(1 for _ in f)
        if n > MAX_MODULE_LINES:
            long[name] = n
    assert not long, long
