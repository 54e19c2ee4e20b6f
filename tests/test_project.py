"""Project-level rules: pins agree, imports run one way without circles, files stay short, notebooks are
committed clean, layout exists."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "src" / "cannabis_market"
LAYERS = {"data": 0, "analysis": 1, "reports": 2, "cli": 3}


def _pins_pyproject() -> dict[str, str]:
    p = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = p["project"]["dependencies"] + p["project"]["optional-dependencies"]["dev"]
    out = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[(\w+)\])?==([\w.]+)", d)
        assert m, f"pyproject dependency {d!r} is not pinned with =="
        name = m.group(1).lower() + (f"-{m.group(2)}" if m.group(2) else "")
        out[name] = m.group(3)
    return out


def _pins_environment() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    out = {}
    for d in env["dependencies"]:
        if isinstance(d, str) and "=" in d and not d.startswith(("python", "pip")):
            name, ver = d.split("=", 1)
            out[name.lower()] = ver.lstrip("=")
    return out


def test_environment_yml_matches_pyproject():
    assert _pins_environment() == _pins_pyproject()


def test_supported_python_range_agrees_everywhere():
    """pyproject's requires-python, environment.yml and the Makefile's interpreter check name one range."""
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    lo, hi = re.fullmatch(r">=([\d.]+),<([\d.]+)", spec).groups()
    env = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    assert f"python>={lo},<{hi}" in env
    make = (REPO / "Makefile").read_text()
    as_tuple = ", ".join(lo.split("."))
    assert (
        f"not ({as_tuple}) <= sys.version_info[:{len(lo.split('.'))}] < ({', '.join(hi.split('.'))})" in make
    )
    readme = (REPO / "README.md").read_text()
    for minor in ("3.13", "3.12", "3.11"):
        assert f"python{minor}" in make and f"`python{minor}`" in readme


def test_constraints_agree_with_direct_pins():
    cons = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line:
            n, v = line.split("==")
            cons[n.lower().replace("_", "-")] = v
    for name, ver in _pins_pyproject().items():
        base = name.removesuffix("-polars")
        assert cons.get(base) == ver, f"constraints.txt pins {base}={cons.get(base)}, pyproject {ver}"


# Layers, lowest first. Top-level modules (errors, format, theme, dates) are the base every layer may
# import; `__main__` sits on top of the cli.
BASE, TOP = -1, 9
MAX_LINES = 600
# Files allowed over MAX_LINES, each with the reason (none today; add one only with a reason and an issue).
LONG_FILES: dict[str, str] = {}
# Circles that go through an import inside a function (never an import-time circle), each with the reason.
ALLOWED_CYCLES: dict[frozenset[str], str] = {
    frozenset({"analysis.impact.estimate", "analysis.impact.placebo", "analysis.impact.result"}): (
        "ImpactResult.placebo() re-runs estimate_impact on a shifted window (placebo imports estimate "
        "inside the function); to break it, the estimate would hand the result its own re-run"
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["cannabis_market", *parts])


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return BASE  # the package itself
    if parts[1] == "__main__":
        return TOP
    return LAYERS.get(parts[1], BASE)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, *, top_level_only: bool) -> set[str]:
    """Package modules `module` imports (outside `if TYPE_CHECKING:`), resolved to files: `from pkg import
    sub` is an edge to pkg.sub when that is a module, else to pkg; relative imports are resolved."""
    path = MODULES[module]
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if top_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name in MODULES)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = module.split(".") if is_pkg else module.split(".")[:-1]
                    pkg = pkg[: len(pkg) - child.level + 1]
                    base = ".".join([*pkg, base] if base else pkg)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    if sub in MODULES:
                        found.add(sub)
                    elif base in MODULES:
                        found.add(base)
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(module)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(frozenset(comp))
    return found


def _short(names: frozenset[str]) -> frozenset[str]:
    return frozenset(n.removeprefix("cannabis_market.") for n in names)


@pytest.mark.parametrize("module", sorted(MODULES), ids=lambda m: m.removeprefix("cannabis_market."))
def test_imports_run_one_way(module):
    """base (errors, format, theme, dates) -> data -> analysis -> reports -> cli -> __main__: a module never
    imports a later layer, not even inside a function."""
    mine = _layer_of(module)
    for other in sorted(_imports(module, top_level_only=False)):
        assert _layer_of(other) <= mine, (
            f"{module} imports {other}: imports must run base -> data -> analysis -> reports -> cli"
        )


def test_no_import_circles():
    """No circle of imports between modules: none at import time, and through imports inside functions
    only the ones listed in ALLOWED_CYCLES (with their reason)."""
    top = {m: _imports(m, top_level_only=True) for m in MODULES}
    assert [sorted(_short(c)) for c in _cycles(top)] == []
    every = {m: _imports(m, top_level_only=False) for m in MODULES}
    found = {_short(c) for c in _cycles(every)}
    assert sorted(map(sorted, found - set(ALLOWED_CYCLES))) == []
    assert sorted(map(sorted, set(ALLOWED_CYCLES) - found)) == [], "a listed circle is gone: remove it"


def test_cycle_finder_finds_circles():
    """The checker itself: a hand-built graph with one circle of three and one of two, and a chain."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}, "g": set()}
    assert sorted(map(sorted, _cycles(graph))) == [["a", "b", "c"], ["d", "e"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_and_from_imports_resolve_to_modules():
    edges = _imports("cannabis_market.cli", top_level_only=False)
    assert {"cannabis_market.cli.data", "cannabis_market.cli.impact", "cannabis_market.cli.report"} <= edges
    assert "cannabis_market.cli" not in edges and "cannabis_market.errors" in edges


def test_no_source_file_over_600_lines():
    long = {
        str(p.relative_to(PKG)): n
        for p in MODULES.values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert {k: v for k, v in long.items() if k not in LONG_FILES} == {}, f"split files over {MAX_LINES} lines"
    assert set(LONG_FILES) <= set(long), "an allowed long file is short now: remove it from LONG_FILES"


def test_analysis_and_cli_import_without_altair():
    """Chart code imports altair (~1.5 s, ~50 MB) when it draws, so fitting and the CLI never pay for it."""
    code = (
        "import sys\n"
        "import cannabis_market.analysis.impact, cannabis_market.analysis.scenarios\n"
        "import cannabis_market.analysis.outage, cannabis_market.analysis.overview\n"
        "import cannabis_market.analysis.event_study, cannabis_market.cli.impact, cannabis_market.cli\n"
        "print('altair' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(PKG.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_notebooks_committed_without_outputs():
    nbs = sorted((REPO / "notebooks").glob("*.ipynb"))
    for nb in nbs:
        cells = json.loads(nb.read_text())["cells"]
        for c in cells:
            if c["cell_type"] == "code":
                assert not c.get("outputs") and c.get("execution_count") is None, f"{nb.name} has outputs"


def test_required_layout():
    for p in [
        "notebooks",
        "data",
        "src/cannabis_market",
        "reports",
        "tests",
        "benchmarks",
        "environment.yml",
        "pyproject.toml",
        "Makefile",
        "README.md",
        ".ci/run",
    ]:
        assert (REPO / p).exists(), f"missing {p}"
    readme = (REPO / "README.md").read_text()
    first_cmds = re.findall(r"^\s*(make \w+)", readme, flags=re.M)[:2]
    assert first_cmds == ["make report", "make test"], first_cmds
