"""Warm kernels (``reports.kernels``): isolation between runs, fallbacks, timeouts, clean shutdown, and
the same figures as the plain (cold) path."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from cannabis_market.reports import build, config, kernels, plan
from cannabis_market.reports.execute import execute_run
from cannabis_market.reports.executors import LocalExecutor

FIX = Path(__file__).parents[1] / "fixtures" / "notebooks"
REPO = Path(__file__).resolve().parents[2]
WARM_CODE = kernels.warm_code

PROBE = """\
import os, sys
import polars
from cannabis_market.reports import nb

seen = int("LEAKED" in globals()) + int(hasattr(polars, "_cm_leak"))
LEAKED = polars._cm_leak = n
nb.record_many({
    "seen": seen,
    "pid": "".join(chr(97 + int(d)) for d in str(os.getpid())),  # as letters: published numbers are rounded
    "ppid": "".join(chr(97 + int(d)) for d in str(os.getppid())),
    "cwd": os.getcwd(),
    "slug_env": os.environ.get("CM_REPORT_SLUG"),
    "preloaded": "statsmodels.api" in sys.modules,
    "blas": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
})
"""


def probe_notebook(folder: Path) -> Path:
    """A notebook that records whether it sees state from another run and whether imports were warm."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "cannabis-market", "display_name": "cm", "language": "python"}
    params = nbformat.v4.new_code_cell("n = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Probe"), params, nbformat.v4.new_code_cell(PROBE)]
    path = folder / "probe.ipynb"
    nbformat.write(nb, path)
    return path


def probe_spec(tmp: Path) -> plan.RunSpec:
    """The one planned run of the probe notebook (for tests that drive the pool directly)."""
    cfg_path = tmp / "reports.yml"
    job = {"name": "probe", "notebook": str(probe_notebook(tmp))}
    cfg_path.write_text(yaml.safe_dump({"jobs": [job]}), encoding="utf-8")
    (spec,) = plan.plan(config.load_config(cfg_path), out=tmp / "out").runs
    return spec


def build_jobs(tmp: Path, jobs: list[dict], *, n_jobs: int = 1, warm: bool | None = None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    cfg_path = tmp / "reports.yml"
    cfg_path.write_text(yaml.safe_dump({"jobs": jobs}, sort_keys=False), encoding="utf-8")
    out = tmp / "out"
    planned = plan.plan(config.load_config(cfg_path), out=out)
    build.run_reports(planned, out, executor=LocalExecutor(n_jobs), echo=lambda s: None, warm=warm)
    return out


def all_results(out: Path) -> dict[str, dict]:
    return {
        f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())
        for p in sorted(out.glob("*/*/results.json"))
    }


@pytest.fixture
def pools(monkeypatch):
    """Every WarmPool closed during the test, with its kernels' and workers' pids."""
    closed: list[dict] = []
    original = kernels.WarmPool.close

    def close(self):
        original(self)
        server = self.server.proc.pid if self.server is not None else None
        closed.append(
            {"kernels": self.kernel_pids, "workers": [w.proc.pid for w in self._all], "dir": self.dir,
             "server": server}
        )  # fmt: skip

    monkeypatch.setattr(kernels.WarmPool, "close", close)
    return closed


def assert_nothing_left(closed: list[dict]) -> None:
    assert closed, "no pool was opened"
    time.sleep(0.2)
    for pool in closed:
        assert pool["kernels"], "the pool started no kernel"
        alive = [p for p in pool["kernels"] + pool["workers"] + [pool["server"]] if kernels.pid_alive(p)]
        assert alive == [], f"left running: {alive}"
        assert not pool["dir"].exists()


@pytest.fixture
def light(monkeypatch):
    """A lighter warm-up (two modules) so the pool tests stay quick; the default one is used below."""
    monkeypatch.setattr(kernels, "warm_code", lambda *a: WARM_CODE(("polars", "statsmodels.api")))


def test_warm_runs_are_isolated_warm_and_leave_nothing(tmp_path, pools, light, monkeypatch):
    """Three runs, two at a time (--jobs 2): each in its own warmed kernel, none sees another's state."""
    for name in kernels.BLAS_THREADS:
        monkeypatch.delenv(name, raising=False)
    nb_path = probe_notebook(tmp_path)
    out = build_jobs(
        tmp_path, [{"name": "probe", "notebook": str(nb_path), "grid": {"n": [1, 2, 3]}}], n_jobs=2
    )
    res = all_results(out)
    assert len(res) == 3 and {r["status"] for r in res.values()} == {"ok"}
    figs = [r["figures"] for r in res.values()]
    assert [f["seen"] for f in figs] == [0, 0, 0]  # no run saw another's globals or module state
    assert len({f["pid"] for f in figs}) == 3  # one kernel per run
    assert all(f["preloaded"] for f in figs)  # the heavy imports were done before the notebook ran
    assert {f["cwd"] for f in figs} == {str(tmp_path)}  # the notebook's folder, as a cold kernel
    assert sorted(f["slug_env"] for f in figs) == sorted(r["slug"] for r in res.values())
    # two kernels at once share the cores: each one's BLAS gets its part (spinning BLAS threads of two
    # kernels on the same cores slowed the event study ~10x); the build's own environment is restored
    assert {f["blas"] for f in figs} == {str(max(1, kernels.usable_cores() // 2))}
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    executed = sorted(out.glob(".cannabis-market/private/probe/*/executed.ipynb"))
    assert len(executed) == 3
    for run in executed:
        cells = [c for c in nbformat.read(run, as_version=4).cells if c.cell_type == "code"]
        assert [c.execution_count for c in cells][:2] == [1, 2]  # the warm-up left no trace in the counts
    assert_nothing_left(pools)


def letters(pid: int) -> str:
    return "".join(chr(97 + int(d)) for d in str(pid))


def test_warm_kernels_are_forks_of_one_server(tmp_path, pools, light, monkeypatch):
    """The default on Linux: every run's kernel is forked from the build's one fork server (its imports
    done once), not started as a new interpreter; with CM_REPORT_FORK=0 kernels are children of their
    workers again, still warm."""
    nb_path = probe_notebook(tmp_path)
    job = [{"name": "probe", "notebook": str(nb_path), "grid": {"n": [1, 2]}}]
    forked = all_results(build_jobs(tmp_path / "fork", job, n_jobs=2))
    (pool,) = pools
    assert pool["server"] is not None
    figs = [r["figures"] for r in forked.values()]
    assert [f["ppid"] for f in figs] == [letters(pool["server"])] * 2
    assert all(f["preloaded"] for f in figs) and [f["seen"] for f in figs] == [0, 0]
    assert_nothing_left(pools)

    monkeypatch.setenv("CM_REPORT_FORK", "0")
    plain = all_results(build_jobs(tmp_path / "plain", job, n_jobs=2))
    assert pools[1]["server"] is None
    figs = [r["figures"] for r in plain.values()]
    assert all(f["preloaded"] for f in figs) and [f["seen"] for f in figs] == [0, 0]
    assert {f["ppid"] for f in figs} <= {letters(p) for p in pools[1]["workers"]}  # each its worker's child
    assert_nothing_left(pools[1:])


def test_no_warm_flag_and_env_run_cold(tmp_path, pools, monkeypatch):
    nb_path = probe_notebook(tmp_path)
    out = build_jobs(tmp_path / "a", [{"name": "probe", "notebook": str(nb_path)}], warm=False)
    monkeypatch.setenv(kernels.WARM_ENV, "0")
    out_env = build_jobs(tmp_path / "b", [{"name": "probe", "notebook": str(nb_path)}])
    for folder in (out, out_env):
        (res,) = all_results(folder).values()
        assert res["status"] == "ok" and res["figures"]["preloaded"] is False
    assert pools == []


def test_a_failing_warm_up_falls_back_to_a_cold_kernel(tmp_path, pools, monkeypatch):
    """jobs=1: the second run's worker is warmed while the first runs; both fail to warm, both run cold."""
    monkeypatch.setattr(kernels, "warm_code", lambda *a: "raise RuntimeError('warm-up broke')")
    nb_path = probe_notebook(tmp_path)
    out = build_jobs(tmp_path, [{"name": "probe", "notebook": str(nb_path), "grid": {"n": [1, 2]}}])
    res = all_results(out)
    assert {r["status"] for r in res.values()} == {"ok"}
    assert not any(r["figures"]["preloaded"] for r in res.values())  # ran cold
    assert_nothing_left(pools)


def test_a_warm_kernel_that_died_while_idle_is_replaced(tmp_path):
    spec = probe_spec(tmp_path)
    dies = "import os, threading, time\nthreading.Thread(target=lambda: (time.sleep(0.5), os._exit(1))).start()\n"
    with kernels.warm_pool([spec], 1, code=dies) as pool:
        assert pool is not None
        warm = pool._idle[0]
        assert warm.wait_ready(60)
        deadline = time.monotonic() + 20
        while kernels.pid_alive(warm.kernel_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not kernels.pid_alive(warm.kernel_pid)
        other_build = dataclasses.replace(spec, out_root=str(tmp_path / "elsewhere"))
        assert kernels.take(other_build) is None  # a pool serves only its own build's runs
        result = execute_run(spec)
    assert result.status == "ok", result.error
    figures = json.loads((spec.out_dir / "results.json").read_text())["figures"]
    assert figures["preloaded"] is False  # the worker started a fresh (cold) kernel
    assert not kernels.pid_alive(warm.proc.pid)


def test_timeout_kills_the_warm_kernel(tmp_path, pools, light):
    out = build_jobs(tmp_path, [{"name": "sleepy", "notebook": str(FIX / "sleeps.ipynb"), "timeout": 2}])
    (res,) = all_results(out).values()
    assert res["status"] == "failed" and res["timed_out"] and "timed out after 2 s" in res["error"]
    assert_nothing_left(pools)


def close_enough(a: object, b: object, rel: float = 1e-9) -> bool:
    """Equal figures: same keys and types, floats equal to ``rel`` relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close_enough(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close_enough(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=0.0) or a == b
    return a == b


def test_close_enough_tells_apart():
    assert close_enough({"x": 1.0, "y": [2.0, "a"]}, {"x": 1.0 + 1e-12, "y": [2.0, "a"]})
    assert not close_enough({"x": 1.0}, {"x": 1.0 + 1e-6})
    assert not close_enough({"x": 1.0}, {"x": 1.0, "y": 2})


def test_warm_and_cold_builds_record_the_same_figures(tmp_path, monkeypatch):
    """The fixture notebooks and a real report on a small generated dataset: the same figures (1e-9
    relative). Polars runs single-threaded here: its multithreaded float sums differ between any two
    runs (cold or warm) at ~1e-8, which is not what this compares."""
    from cannabis_market.data.generate import generate_dataset

    monkeypatch.setenv("POLARS_MAX_THREADS", "1")
    dataset = generate_dataset(tmp_path / "data", seed=5, stores=25)
    jobs = [
        {"name": "charts", "notebook": str(FIX / "charts.ipynb")},
        {
            "name": "overview",
            "notebook": str(REPO / "notebooks" / "01_market_overview.ipynb"),
            "parameters": {"dataset": str(dataset)},
        },
    ]
    warm = all_results(build_jobs(tmp_path / "warm", jobs, n_jobs=2, warm=True))
    cold = all_results(build_jobs(tmp_path / "cold", jobs, n_jobs=2, warm=False))
    assert warm.keys() == cold.keys() and len(warm) == 2
    assert {r["status"] for r in warm.values()} == {"ok"}
    assert warm["overview/default"]["figures"] and warm["charts/default"]["figures"]
    for key in warm:
        assert close_enough(warm[key]["figures"], cold[key]["figures"]), key


def test_closing_the_pool_stops_a_kernel_still_warming(tmp_path):
    spec = probe_spec(tmp_path)
    with kernels.warm_pool([spec], 1, code="import time\ntime.sleep(120)\n") as pool:
        assert pool is not None
        warm = pool._idle[0]
        pid_file = kernels._pid_path(warm.ready_path)
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        kernel_pid = int(pid_file.read_text())
        assert kernels.pid_alive(kernel_pid) and not warm.ready_path.exists()
    time.sleep(0.2)
    assert not kernels.pid_alive(kernel_pid) and not kernels.pid_alive(warm.proc.pid)
    assert not pool.dir.exists()


def test_forked_workers_render_their_own_page(tmp_path, pools, light, monkeypatch):
    """A forked worker has the exporter loaded, so it renders its run's page itself (the supervisor then
    renders nothing); the page is the one the supervisor would have made."""
    from cannabis_market.reports import execute

    calls: list[str] = []
    original = execute.render_page

    def counting(spec, *args, **kwargs):
        calls.append(spec.label)
        return original(spec, *args, **kwargs)

    monkeypatch.setattr(execute, "render_page", counting)
    nb_path = probe_notebook(tmp_path)
    job = [{"name": "probe", "notebook": str(nb_path)}]
    forked = build_jobs(tmp_path / "fork", job)
    assert calls == []
    monkeypatch.setenv("CM_REPORT_FORK", "0")
    plain = build_jobs(tmp_path / "plain", job)
    assert calls == ["probe/default"]

    def page(out: Path) -> str:
        text = (out / "probe" / "default" / "report.html").read_text(encoding="utf-8")
        return re.sub(r"\d{4}-\d\d-\d\dT[\d:]+[+-]\d\d:\d\d|\b[a-j]{2,8}\b", "X", text)  # times, pids

    assert page(forked) == page(plain)
    assert_nothing_left(pools)
