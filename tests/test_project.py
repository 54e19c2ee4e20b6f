"""Project-level rules: pins agree, imports run one way, notebooks are committed clean, layout exists."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "src" / "cannabis_market"
LAYERS = {"data": 0, "analysis": 1, "reports": 2}


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


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "cannabis_market" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_run_one_way(path):
    """data -> analysis -> reports: a layer never imports a later one."""
    rel = path.relative_to(PKG).parts
    mine = LAYERS.get(rel[0]) if len(rel) > 1 else None
    if mine is None:
        return
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for n in names:
            other = _layer(n)
            assert other is None or other <= mine, (
                f"{path.name} ({rel[0]}) imports {n}: imports must run data -> analysis -> reports"
            )


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
